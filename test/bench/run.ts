import { benchCore } from './core-bench';
import { printFigures } from './measure';

/** `npm run bench`: prints figures for this machine. Benchmarks measure; they never assert. */
async function main(): Promise<void> {
  console.log(`# Crypto Server benchmarks — node ${process.version}, ${new Date().toISOString()}`);
  printFigures('Key service (local adapter) and bare primitives', await benchCore());
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
