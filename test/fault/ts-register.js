// Lets a child process run the CLI from its TypeScript sources (node -r ./ts-register.js
// server/cli/main.ts …), compiled on load by the same swc that jest uses: separate real processes
// without a prior `npm run build`.
const { existsSync, readFileSync } = require('node:fs');
const { resolve, dirname } = require('node:path');
const Module = require('node:module');
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

// `import('./local.js')` (the KMS registry's lazy adapter loads: ESM-style specifiers the build
// resolves to compiled files) finds the .ts source beside it, so every command runs from source.
const original = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (request.startsWith('.') && request.endsWith('.js') && parent?.filename) {
    const ts = resolve(dirname(parent.filename), request.slice(0, -3) + '.ts');
    if (existsSync(ts)) return ts;
  }
  return original.call(this, request, parent, ...rest);
};
