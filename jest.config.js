/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.(t|j)sx?$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }],
  },
  // jose is ESM-only; let swc turn it into CommonJS for jest's module system.
  transformIgnorePatterns: ['/node_modules/(?!(jose)/)'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  setupFiles: ['<rootDir>/test/support/sqlite-error-realm.js'],
  testTimeout: 60000,
  maxWorkers: 2,
  // Workers grow to ~500 MB over many suites and then need longer than jest's 500 ms grace to exit
  // ("failed to exit gracefully" with no open handle left): recycle them between files instead.
  workerIdleMemoryLimit: '400MB',
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
};
