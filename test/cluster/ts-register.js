// test/fault/ts-register.js, plus: `import('./local.js')` (ESM-style specifiers the build resolves
// to compiled files) finds the .ts source beside it, so `serve` runs from source too.
require('../fault/ts-register.js');
const Module = require('node:module');
const { existsSync } = require('node:fs');
const { resolve, dirname } = require('node:path');

const original = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (request.startsWith('.') && request.endsWith('.js') && parent?.filename) {
    const ts = resolve(dirname(parent.filename), request.slice(0, -3) + '.ts');
    if (existsSync(ts)) return ts;
  }
  return original.call(this, request, parent, ...rest);
};
