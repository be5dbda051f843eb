/**
 * A job process started before its job (a standby), so the next job does not wait for
 * node, tsx and the job's modules to load (about 1 s here; measured in
 * bench/results, `jobStartAndPollMs`). ChildProcessJobRunner keeps one ready; the job's
 * entry point, run with STANDBY_FLAG, loads its code and then waits on stdin for the
 * environment a process started for that job would have had.
 */

/** The command-line flag that makes the job's entry point wait for its environment on stdin. */
export const STANDBY_FLAG = '--standby';

/** The line a standby prints on stdout once it has its job's environment (the runner reads it and does not forward it). */
export const STANDBY_ACK = JSON.stringify({ standby: 'job received' });

/**
 * Reads one JSON object of environment variables from `input` until it ends, and makes
 * it the whole of `process.env` (variables it does not name are removed), so the job sees
 * exactly the environment a fresh process would, then prints STANDBY_ACK. Undefined when the input ends empty:
 * the runner stopped, or its process exited, before a job came.
 *
 * Variables node itself reads only when a process starts (NODE_OPTIONS,
 * UV_THREADPOOL_SIZE) keep the values the standby started with.
 */
export async function receiveEnvironment(input: NodeJS.ReadableStream = process.stdin): Promise<Record<string, string> | undefined> {
  let text = '';
  input.setEncoding('utf8');
  for await (const chunk of input) text += chunk as string;
  if (!text.trim()) return undefined;
  const env = JSON.parse(text) as Record<string, string>;
  for (const name of Object.keys(process.env)) if (!Object.hasOwn(env, name)) delete process.env[name];
  Object.assign(process.env, env);
  process.stdout.write(`${STANDBY_ACK}\n`);
  return env;
}
