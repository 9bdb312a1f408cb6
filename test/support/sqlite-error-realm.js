// better-sqlite3's native addon is loaded once per jest worker process, and it keeps the SqliteError
// class of the first test file that opened a database. Every later file in that worker then gets
// errors built from another file's realm: not `instanceof Error` there, so jest's
// `rejects.toThrow` reports "did not throw" for a real SqliteError (CI, append-chained.test.ts).
// Each file registers its own class, as a single production process does once.
const addon = require('bindings')({ bindings: 'better_sqlite3.node', module_root: require('node:path').dirname(require.resolve('better-sqlite3/package.json')) });
addon.setErrorConstructor(require('better-sqlite3/lib/sqlite-error'));
addon.isInitialized = true;
