const { writeSync } = require('node:fs');

/**
 * Ends every jest run with one plain line, "N passed, N failed, N skipped", that CI systems read
 * without knowing jest's format. Written at process exit so it is the very last line.
 */
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    const line = `jest: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ${skipped} skipped\n`;
    process.once('exit', () => writeSync(2, line));
  }
}
module.exports = SummaryReporter;
