// The cluster tests' loader is the fault tests' one (TypeScript from source, `./x.js` → `./x.ts`).
require('../fault/ts-register.js');
