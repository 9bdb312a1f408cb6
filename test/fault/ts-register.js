// Lets a child process run the CLI from its TypeScript sources (node -r ./ts-register.js
// server/cli/main.ts …), compiled on load by the same swc that jest uses: separate real processes
// without a prior `npm run build`.
const { readFileSync } = require('node:fs');
const { transformSync } = require('@swc/core');

require.extensions['.ts'] = (module, filename) => {
  const { code } = transformSync(readFileSync(filename, 'utf8'), {
    filename,
    jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  });
  module._compile(code, filename);
};
