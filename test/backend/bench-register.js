// For `node -r ./test/fault/ts-register.js -r ./test/backend/bench-register.js test/backend/bench.ts`:
// source imports name compiled files (`await import('./local.js')`); from source, load the .ts beside them.
const Module = require('node:module');
const { existsSync } = require('node:fs');
const { resolve, dirname } = require('node:path');

const original = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (parent && request.startsWith('.') && request.endsWith('.js')) {
    const ts = resolve(dirname(parent.filename), request.slice(0, -3) + '.ts');
    if (existsSync(ts)) return ts;
  }
  return original.call(this, request, parent, ...rest);
};
