import { parseArgs } from 'node:util';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApiError, CliError, UsageError, callApi, callApiBinary, explainApiError } from './cli-client.js';
import { DEFAULT_ENDPOINT, resolveConnection } from './cli-config.js';
import { fetchModels, predictImages } from './cli-predict.js';
import { formatBytes, type Output } from './cli-progress.js';
import { leaderboardLines, showStatus } from './cli-status.js';
import { SearchReportSchema } from '../schemas/search.js';
import { uploadDataset } from './cli-upload.js';

export { ApiError, CliError, EndpointUnreachableError, UsageError } from './cli-client.js';
export { readDefaultApiKey, resolveConnection } from './cli-config.js';
export { batchInstances, fetchModels, predictImages } from './cli-predict.js';
export { renderBar, renderJobLine } from './cli-progress.js';
export { fetchJobStatus, showStatus } from './cli-status.js';
export { buildTrainSpec, listDatasetFiles, uploadDataset } from './cli-upload.js';

/** Everything `tl` touches outside itself, so tests can run it in-process. */
export interface CliIo {
  stdout: Output;
  stderr: Output;
  env: Record<string, string | undefined>;
  cwd: string;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Poll interval of `--wait`; tests shorten it. @default 1000 */
  pollIntervalMs?: number;
}

const GLOBAL_HELP = `Usage: tl <command> [options]

Commands:
  upload <dir> --model <name>   upload a dataset folder, then train.json (which starts training)
  status <model> [--wait]       show the model's latest training job; --wait follows it to the end
  predict <model> <image...>    predict images and print the JSON response
  models [model]                list the models, or show one model's metadata
  rollback <model>              point the model's latest alias back at the version before
  promote <model> <version>     point the model's latest alias at a version (or alias, e.g. candidate)
  export <model> [-o file]      save the model as one ONNX file

Global options:
  --endpoint <url>   platform URL (env TL_ENDPOINT; default ${DEFAULT_ENDPOINT})
  --api-key <key>    API key (env TL_API_KEY; for a loopback endpoint, the default
                     tenant's key in $TL_DATA_DIR/tenants.json, TL_DATA_DIR default .data)
  -h, --help         help; \`tl <command> --help\` for a command's options

Exit codes: 0 ok, 1 error or failed job, 2 bad usage or timeout.
`;

const GLOBAL_OPTIONS = {
  endpoint: { type: 'string' },
  'api-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
}

interface CommandSpec {
  usage: string;
  options: Record<string, OptionSpec>;
  run(values: Record<string, unknown>, positionals: string[], io: CliIo): Promise<number>;
}

function parseNumber(flag: string, raw: unknown, check: (n: number) => boolean, expected: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw === '' || !Number.isFinite(n) || !check(n)) throw new UsageError(`--${flag} must be ${expected}, got ${JSON.stringify(raw)}`);
  return n;
}

async function connect(values: Record<string, unknown>, io: CliIo) {
  const conn = await resolveConnection({
    endpoint: values.endpoint as string | undefined,
    apiKey: values['api-key'] as string | undefined,
    env: io.env,
    cwd: io.cwd,
  });
  return { ...conn, fetch: io.fetch };
}

/** The hint after an upload repeats a non-default endpoint given as a flag, so it can be pasted. */
function statusHint(model: string, values: Record<string, unknown>): string {
  const endpoint = values.endpoint as string | undefined;
  return `tl status ${model} --wait${endpoint ? ` --endpoint ${endpoint}` : ''}`;
}

const COMMANDS: Record<string, CommandSpec> = {
  upload: {
    usage: `Usage: tl upload <dir> --model <name> [--dataset <name>] [--wait [--timeout <s>]]

Uploads every file under <dir> (dotfiles skipped) to the dataset, then train.json
last: its arrival starts training. Without a train.json in <dir>, {"model": "<name>"}
is sent; with one, its "model" is set to --model.

Options:
  --model <name>        model to train (required)
  --dataset <name>      dataset to upload to (default: the model's name)
  --concurrency <n>     files in flight at once (default 4)
  --wait                then follow the training job like \`tl status --wait\`
  --timeout <s>         with --wait, give up after this many seconds (default 3600)
`,
    options: {
      model: { type: 'string' },
      dataset: { type: 'string' },
      concurrency: { type: 'string' },
      wait: { type: 'boolean' },
      timeout: { type: 'string' },
    },
    async run(values, positionals, io) {
      if (positionals.length !== 1) throw new UsageError('give exactly one folder to upload');
      if (typeof values.model !== 'string') throw new UsageError('--model <name> is required');
      const concurrency = parseNumber('concurrency', values.concurrency, (n) => Number.isInteger(n) && n >= 1 && n <= 64, 'an integer from 1 to 64');
      const timeoutSeconds = parseNumber('timeout', values.timeout, (n) => n >= 0, 'a number of seconds');
      const conn = await connect(values, io);
      const result = await uploadDataset({
        ...conn,
        dir: positionals[0],
        model: values.model,
        dataset: values.dataset as string | undefined,
        concurrency,
        stdout: io.stdout,
        stderr: io.stderr,
      });
      io.stdout.write(
        `uploaded ${result.files} files (${formatBytes(result.bytes)}) to dataset ${result.dataset}, then train.json (${result.spec}): ` +
          `the platform prepares the data and trains model ${result.model}, unless this exact content was trained already\n` +
          // Uploads add and replace files; nothing is deleted from the dataset.
          `note: files uploaded to dataset ${result.dataset} earlier and missing here are still part of it; use --dataset <new name> to start clean\n`,
      );
      if (!values.wait) {
        io.stdout.write(`next: ${statusHint(result.model, values)}\n`);
        return 0;
      }
      return showStatus({
        ...conn,
        model: result.model,
        wait: true,
        timeoutSeconds,
        // A little slack for a platform clock slightly behind this one.
        since: new Date(result.triggeredAt.getTime() - 2000),
        pollIntervalMs: io.pollIntervalMs,
        stdout: io.stdout,
        stderr: io.stderr,
      });
    },
  },
  status: {
    usage: `Usage: tl status <model> [--wait] [--timeout <s>] [--since <time>] [--json]

Shows the model's latest training job. With --wait, polls about once a second and
draws a progress bar on stderr until the job ends; a job not found yet is waited for.

Options:
  --wait            follow the job until it succeeds, fails or is cancelled
  --timeout <s>     give up waiting after this many seconds (default 3600)
  --since <time>    ignore jobs created before this ISO time (earlier uploads)
  --json            print the job status as JSON on stdout

Exit codes: 0 succeeded, 1 failed, cancelled or error, 2 timed out (without --wait:
still running) or bad usage.
`,
    options: {
      wait: { type: 'boolean' },
      timeout: { type: 'string' },
      since: { type: 'string' },
      json: { type: 'boolean' },
    },
    async run(values, positionals, io) {
      if (positionals.length !== 1) throw new UsageError('give exactly one model');
      const timeoutSeconds = parseNumber('timeout', values.timeout, (n) => n >= 0, 'a number of seconds');
      let since: Date | undefined;
      if (values.since !== undefined) {
        since = new Date(values.since as string);
        if (Number.isNaN(since.getTime()))
          throw new UsageError(`--since must be a date and time such as 2025-01-31T12:00:00Z, got ${JSON.stringify(values.since)}`);
      }
      const conn = await connect(values, io);
      return showStatus({
        ...conn,
        model: positionals[0],
        wait: values.wait === true,
        timeoutSeconds,
        since,
        json: values.json === true,
        pollIntervalMs: io.pollIntervalMs,
        stdout: io.stdout,
        stderr: io.stderr,
      });
    },
  },
  predict: {
    usage: `Usage: tl predict <model> <image...> [--version <v>] [--top-k <k>] [--task <name>...]

Sends the images (32 per call at most; more are split into several calls pinned to one
version) and prints the merged JSON response: {"model","version","predictions":[...]}.

Options:
  --version <v>     a version or alias (default: latest)
  --top-k <k>       scores listed per classification task (default 3)
  --task <name>     only these tasks (repeatable); auxiliary tasks only when named
`,
    options: {
      version: { type: 'string' },
      'top-k': { type: 'string' },
      task: { type: 'string', multiple: true },
    },
    async run(values, positionals, io) {
      if (positionals.length < 2) throw new UsageError('give a model and at least one image');
      const topK = parseNumber('top-k', values['top-k'], (n) => Number.isInteger(n) && n >= 1 && n <= 100, 'an integer from 1 to 100');
      const conn = await connect(values, io);
      const response = await predictImages({
        ...conn,
        model: positionals[0],
        images: positionals.slice(1),
        version: values.version as string | undefined,
        topK,
        tasks: values.task as string[] | undefined,
        cwd: io.cwd,
      });
      io.stdout.write(`${JSON.stringify(response, null, 2)}\n`);
      return 0;
    },
  },
  models: {
    usage: `Usage: tl models [model]

Prints the JSON of GET /models, or of GET /models/<model> (the serving version's
metadata and metrics) when a model is named.
`,
    options: {},
    async run(values, positionals, io) {
      if (positionals.length > 1) throw new UsageError('give at most one model');
      const conn = await connect(values, io);
      const body = await fetchModels({ ...conn, model: positionals[0] });
      io.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
      // For a person at a terminal: the search's leaderboard as a table, on stderr so stdout stays JSON.
      const search = SearchReportSchema.safeParse((body as { metrics?: { search?: unknown } } | undefined)?.metrics?.search);
      if (positionals[0] && search.success) io.stderr.write(`${leaderboardLines(search.data).join('\n')}\n`);
      return 0;
    },
  },
  rollback: {
    usage: `Usage: tl rollback <model>

Points the model's \`latest\` alias back at the version it served before
(POST /models/<model>/rollback) and prints the result; running it again undoes it.
`,
    options: {},
    async run(values, positionals, io) {
      if (positionals.length !== 1) throw new UsageError('give exactly one model');
      const conn = await connect(values, io);
      const body = await callApi(conn, `/models/${encodeURIComponent(positionals[0])}/rollback`, { method: 'POST' });
      io.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
      return 0;
    },
  },
  promote: {
    usage: `Usage: tl promote <model> <version>

Points the model's \`latest\` alias at <version> (a version id, or an alias such as
\`candidate\`: the newest version the promotion gate kept out)
(POST /models/<model>/promote) and prints the result; \`tl rollback <model>\` undoes it.
`,
    options: {},
    async run(values, positionals, io) {
      if (positionals.length !== 2) throw new UsageError('give a model and a version');
      const conn = await connect(values, io);
      const body = await callApi(conn, `/models/${encodeURIComponent(positionals[0])}/promote`, { method: 'POST', body: { version: positionals[1] } });
      io.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
      return 0;
    },
  },
  export: {
    usage: `Usage: tl export <model> [--version <v>] [--task <name>]... [--format onnx] [-o <file>]

Saves the model as one self-contained ONNX file (GET /models/<model>/export):
input \`image\` float32 NHWC [N, H, W, 3] with RGB 0-255 (or \`features\` [N, F]),
one output per task named after it, the tasks and labels in metadata_props
\`tl.tasks\`; writes the model card (markdown) beside it. Default file:
<model>.onnx in the current folder.
`,
    options: { version: { type: 'string' }, task: { type: 'string', multiple: true }, format: { type: 'string' }, output: { type: 'string', short: 'o' } },
    async run(values, positionals, io) {
      if (positionals.length !== 1) throw new UsageError('give exactly one model');
      const format = (values.format as string | undefined) ?? 'onnx';
      if (format !== 'onnx') throw new UsageError(`--format ${format} is not supported; use onnx`);
      const conn = await connect(values, io);
      const query = new URLSearchParams({ format });
      if (typeof values.version === 'string') query.set('version', values.version);
      const tasks = values.task as string[] | undefined;
      if (tasks?.length) query.set('tasks', tasks.join(','));
      const bytes = await callApiBinary(conn, `/models/${encodeURIComponent(positionals[0])}/export?${query.toString()}`);
      const file = path.resolve(io.cwd, (values.output as string | undefined) ?? `${positionals[0]}.onnx`);
      await writeFile(file, bytes);
      // The model card beside the file: what the model was trained on and how well it does.
      const card = await callApiBinary(
        conn,
        `/models/${encodeURIComponent(positionals[0])}/card${typeof values.version === 'string' ? `?version=${encodeURIComponent(values.version)}` : ''}`,
      );
      const cardFile = file.replace(/\.onnx$/, '') + '.md';
      await writeFile(cardFile, card);
      io.stdout.write(`${file} (${formatBytes(bytes.length)})\n${cardFile}\n`);
      return 0;
    },
  },
};

/**
 * Runs `tl` with `argv` (without `node` and the script) and returns the exit code.
 * Never throws: every failure becomes a message on stderr and a code.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let command: string | undefined;
  try {
    // Parse with every command's options first so global flags may come before the
    // command; then refuse options that do not belong to the command given.
    const allOptions: Record<string, OptionSpec> = Object.assign({}, GLOBAL_OPTIONS, ...Object.values(COMMANDS).map((c) => c.options));
    const parsed = parseArgs({ args: argv, options: allOptions, allowPositionals: true, strict: true, tokens: true });
    const values: Record<string, unknown> = parsed.values;
    const { positionals, tokens } = parsed;
    const help = values.help === true;
    command = positionals[0];
    const spec = command === undefined ? undefined : COMMANDS[command];
    if (!spec) {
      if (command === undefined || command === 'help') {
        const asked = help || command === 'help';
        (asked ? io.stdout : io.stderr).write(GLOBAL_HELP);
        return asked ? 0 : 2;
      }
      throw new UsageError(`unknown command "${command}"`);
    }
    if (help) {
      io.stdout.write(spec.usage);
      return 0;
    }
    for (const token of tokens ?? []) {
      if (token.kind === 'option' && !(token.name in GLOBAL_OPTIONS) && !(token.name in spec.options)) {
        throw new UsageError(`${command} takes no option ${token.rawName}`);
      }
    }
    return await spec.run(values, positionals.slice(1), io);
  } catch (error) {
    return reportError(error, command, io);
  }
}

function reportError(error: unknown, command: string | undefined, io: CliIo): number {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    error = new UsageError((error as Error).message);
  }
  if (error instanceof UsageError) {
    const help = command && COMMANDS[command] ? `tl ${command} --help` : 'tl --help';
    io.stderr.write(`tl: ${error.message}\nsee \`${help}\`\n`);
    return error.exitCode;
  }
  if (error instanceof ApiError) {
    io.stderr.write(`tl: ${explainApiError(error)}\n`);
    return error.exitCode;
  }
  if (error instanceof CliError) {
    io.stderr.write(`tl: ${error.message}\n`);
    return error.exitCode;
  }
  io.stderr.write(`tl: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return 1;
}
