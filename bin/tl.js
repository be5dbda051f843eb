#!/usr/bin/env node
// The `tl` command. Plain JS so it runs with no build step: it registers tsx, then loads
// the TypeScript CLI by an absolute URL, so it works from any working directory.
import { register } from 'tsx/esm/api';

register();

const { runCli } = await import(new URL('../shared/local/cli.ts', import.meta.url).href);

// `tl models | head` closes the pipe early; that is not an error worth a stack trace.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
});
