import sharp from 'sharp';
import { tempStore, type TempStore } from '../../helpers/temp-store.js';
import type { JobDescription, JobRequest, JobRunner } from '../../../shared/ports/job-runner.js';

/** Test doubles and data shared by the data and preprocess tests. */

export type TmpStore = TempStore;

export const makeTmpStore = (): Promise<TempStore> => tempStore('tl-preprocess-');

export type Rgb = { r: number; g: number; b: number };

/** A solid image in the given format; `alpha` < 1 makes a PNG/WebP with transparency. */
export async function solidImage(
  format: 'png' | 'jpeg' | 'webp' | 'gif' | 'tiff',
  colour: Rgb,
  options: { width?: number; height?: number; alpha?: number } = {},
): Promise<Buffer> {
  const { width = 24, height = 16, alpha } = options;
  const img = sharp({ create: { width, height, channels: alpha === undefined ? 3 : 4, background: alpha === undefined ? colour : { ...colour, alpha } } });
  if (format === 'jpeg') return img.jpeg({ quality: 95 }).toBuffer();
  if (format === 'webp') return img.webp({ lossless: true }).toBuffer();
  if (format === 'gif') return img.gif().toBuffer();
  if (format === 'tiff') return img.tiff().toBuffer();
  return img.png().toBuffer();
}

/** A JPEG cut in half: the header parses, the pixel data ends early. */
export async function truncatedJpeg(): Promise<Buffer> {
  const full = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 10, g: 200, b: 30 } } })
    .jpeg()
    .toBuffer();
  return full.subarray(0, Math.floor(full.length / 2));
}

export const RED: Rgb = { r: 220, g: 20, b: 20 };
export const GREEN: Rgb = { r: 20, g: 200, b: 40 };
export const BLUE: Rgb = { r: 20, g: 40, b: 220 };

/** In-memory JobRunner that records what it was asked to run. */
export class FakeJobRunner implements JobRunner {
  readonly submitted: JobRequest[] = [];
  /** When set, the next submit throws it (a transient runner failure). */
  failNext?: Error;
  /** What describe says of a runner job id; default: submitted. `null`: the runner has no record of it. */
  readonly states = new Map<string, JobDescription['state'] | null>();

  async submit(request: JobRequest): Promise<{ runnerJobId: string }> {
    if (this.failNext) {
      const err = this.failNext;
      this.failNext = undefined;
      throw err;
    }
    this.submitted.push(request);
    return { runnerJobId: `fake-${this.submitted.length}` };
  }

  async describe(runnerJobId: string): Promise<JobDescription | undefined> {
    const i = Number(runnerJobId.replace('fake-', '')) - 1;
    const req = this.submitted[i];
    const state = this.states.get(runnerJobId);
    if (state === null) return undefined;
    return req ? { jobId: req.jobId, runnerJobId, state: state ?? 'submitted' } : undefined;
  }

  async cancel(): Promise<void> {}
}
