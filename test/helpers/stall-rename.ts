/**
 * Test-only preload for the training job's child process (`node --import tsx
 * --import ./test/helpers/stall-rename.ts functions/train/main.ts`): when the
 * destination of a rename matches TL_TEST_STALL_RENAME (a regex), the process
 * says so on stderr and hangs there, so a test can kill -9 it at exactly that
 * point of a publish (the folder store writes every object by renaming a
 * temporary file into place). Never loaded by the platform itself.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const pattern = process.env.TL_TEST_STALL_RENAME;
if (pattern) {
  const re = new RegExp(pattern);
  const rename = fs.promises.rename.bind(fs.promises);
  fs.promises.rename = async (from, to) => {
    if (re.test(String(to))) {
      process.stderr.write(`STALLED before renaming into ${String(to)}\n`);
      await new Promise<never>(() => undefined);
    }
    return rename(from, to);
  };
  syncBuiltinESMExports();
}
