import type { JobStatus } from '../schemas/job.js';

/** The part of a stream the CLI writes to; `process.stdout` and test buffers both fit. */
export interface Output {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

/** `[#######.............]  35%`: ASCII so it survives any terminal and log file. */
export function renderBar(fraction: number, width = 20): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const filled = Math.round(f * width);
  const percent = `${Math.floor(f * 100)}%`.padStart(4);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${percent}`;
}

/**
 * One status line on stderr. On a terminal it is redrawn in place with `\r`; in a log
 * (non-TTY) a new line is written only when its `key` changes, so CI logs stay short.
 */
export class ProgressLine {
  private lastLine = '';
  private lastKey: string | undefined;
  private drawn = false;

  constructor(private readonly out: Output) {}

  update(line: string, key: string): void {
    if (this.out.isTTY) {
      if (line === this.lastLine) return;
      // \x1b[K clears what a longer previous line left behind.
      this.out.write(`\r${line}\x1b[K`);
      this.drawn = true;
    } else {
      if (key === this.lastKey) return;
      this.out.write(`${line}\n`);
    }
    this.lastLine = line;
    this.lastKey = key;
  }

  /** Ends the redrawn line so the next output starts on a fresh one. */
  done(): void {
    if (this.out.isTTY && this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}

/** Fixed decimals keep the redrawn line from jittering as figures change. */
function formatNumber(value: number): string {
  return Math.abs(value) >= 100 ? value.toFixed(1) : value.toFixed(3);
}

/**
 * The figures worth a glance while training: loss first, then the best accuracy-like
 * figure (validation before training), whatever the training job names its tasks.
 */
export function pickMetrics(metrics: Record<string, number>): [string, number][] {
  const names = Object.keys(metrics);
  const picked: string[] = [];
  for (const name of ['loss', 'val_loss']) if (name in metrics) picked.push(name);
  const accuracy = names.find((n) => n.startsWith('val_') && /acc/.test(n)) ?? names.find((n) => /acc/.test(n));
  if (accuracy) picked.push(accuracy);
  return picked.map((n) => [n, metrics[n]]);
}

/** `[#####...] 25% running training epoch 3/30 loss 0.412 val_acc 0.873` */
export function renderJobLine(status: Pick<JobStatus, 'state' | 'phase' | 'progress' | 'epoch' | 'epochs' | 'metrics'>): string {
  const parts = [renderBar(status.progress ?? 0), status.state];
  if (status.phase) parts.push(status.phase);
  if (status.epoch !== undefined) parts.push(`epoch ${status.epoch}${status.epochs !== undefined ? `/${status.epochs}` : ''}`);
  for (const [name, value] of pickMetrics(status.metrics ?? {})) parts.push(`${name} ${formatNumber(value)}`);
  return parts.join(' ');
}

/** Human-readable byte counts for the upload line. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
