import { z } from 'zod';
import { getJson, type ObjectStore } from '../ports/object-store.js';
import { LabelValueSchema } from '../schemas/manifest.js';
import { DatasetReportSchema, type DatasetReport, type SplitName } from '../schemas/report.js';
import { UserError } from '../errors.js';

/**
 * A shard is one binary object: a 4-byte little-endian header length, a JSON
 * header, then the records' inputs back to back (uint8 pixels HWC, or float32
 * features). Compact, readable without any library, and fast to turn into a tensor.
 */
export const ShardHeaderSchema = z.strictObject({
  format: z.literal('tl-shard-1'),
  split: z.enum(['train', 'validation', 'test']),
  dtype: z.enum(['uint8', 'float32']),
  /** Shape of one record, e.g. [224, 224, 3]. */
  shape: z.array(z.number().int().positive()),
  records: z.array(z.strictObject({ key: z.string(), labels: z.record(z.string(), LabelValueSchema.nullable()) })),
});
export type ShardHeader = z.infer<typeof ShardHeaderSchema>;
export type ShardRecord = ShardHeader['records'][number];

export interface Shard extends Omit<ShardHeader, 'format'> {
  /** records.length × prod(shape) values. */
  data: Uint8Array | Float32Array;
}

/** A prepared shard that does not decode: the user prepares the dataset anew by uploading train.json again. */
export class ShardFormatError extends UserError {
  override name = 'ShardFormatError';
  constructor(message: string) {
    super('INVALID_DATA', `a prepared shard is damaged: ${message}`);
  }
}

const recordSize = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export function encodeShard(shard: Shard): Buffer {
  const n = shard.records.length * recordSize(shard.shape);
  if (shard.data.length !== n) throw new ShardFormatError(`shard data has ${shard.data.length} values, expected ${n}`);
  if ((shard.dtype === 'uint8') !== shard.data instanceof Uint8Array) throw new ShardFormatError('shard dtype does not match its data');
  return encodeShardFrom(shard, [shard.data]);
}

/**
 * A shard whose body is `parts` back to back (e.g. one array of pixels per record),
 * written straight into the one buffer returned: each value is copied once (joining the
 * records first and then the header to them copied 75 MB twice for 500 images, which
 * in fresh memory costs ~0.5 s here).
 */
export function encodeShardFrom(header: Omit<Shard, 'data'>, parts: readonly (Uint8Array | Float32Array)[]): Buffer {
  const bytesPer = header.dtype === 'uint8' ? 1 : 4;
  const bytes = header.records.length * recordSize(header.shape) * bytesPer;
  if (parts.some((p) => (header.dtype === 'uint8') !== p instanceof Uint8Array)) throw new ShardFormatError('shard dtype does not match its data');
  const given = parts.reduce((a, p) => a + p.byteLength, 0);
  if (given !== bytes) throw new ShardFormatError(`shard data has ${given / bytesPer} values, expected ${bytes / bytesPer}`);
  const h: ShardHeader = { format: 'tl-shard-1', split: header.split, dtype: header.dtype, shape: header.shape, records: header.records };
  const json = Buffer.from(JSON.stringify(h), 'utf8');
  // Pad the header so float32 data starts 4-byte aligned.
  const padded = json.length + ((4 - ((4 + json.length) % 4)) % 4);
  const out = Buffer.allocUnsafe(4 + padded + bytes);
  out.writeUInt32LE(padded, 0);
  json.copy(out, 4);
  out.fill(0x20, 4 + json.length, 4 + padded);
  let at = 4 + padded;
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at);
    at += p.byteLength;
  }
  return out;
}

/** A shard's header, checked, and a view of its body inside `buf` (nothing copied). */
function parseShard(buf: Buffer): { header: ShardHeader; body: Uint8Array } {
  if (buf.length < 4) throw new ShardFormatError('shard too short');
  const hlen = buf.readUInt32LE(0);
  if (4 + hlen > buf.length) throw new ShardFormatError('shard header runs past the end');
  const header = ShardHeaderSchema.parse(JSON.parse(buf.subarray(4, 4 + hlen).toString('utf8')));
  const n = header.records.length * recordSize(header.shape);
  const start = 4 + hlen;
  const bytes = header.dtype === 'uint8' ? n : n * 4;
  if (buf.length - start !== bytes) throw new ShardFormatError(`shard body has ${buf.length - start} bytes, expected ${bytes}`);
  // A plain Uint8Array, not a Buffer (whose slice() is a view and whose constructor is deprecated).
  return { header, body: new Uint8Array(buf.buffer, buf.byteOffset + start, bytes) };
}

/** Values of `dtype` over `body`: a view when its bytes are aligned for it, else a copy. */
function valuesOf(dtype: ShardHeader['dtype'], body: Uint8Array): Uint8Array | Float32Array {
  if (dtype === 'uint8') return body;
  if (body.byteOffset % 4 === 0) return new Float32Array(body.buffer, body.byteOffset, body.byteLength / 4);
  return new Float32Array(Uint8Array.from(body).buffer);
}

/** A shard with its data in memory of its own (a copy: nothing refers to `buf` afterwards). */
export function decodeShard(buf: Buffer): Shard {
  const { header, body } = parseShard(buf);
  const data = valuesOf(header.dtype, Uint8Array.from(body));
  return { split: header.split, dtype: header.dtype, shape: header.shape, records: header.records, data };
}

export async function readReport(store: ObjectStore, preparedPrefix: string): Promise<DatasetReport> {
  return DatasetReportSchema.parse(await getJson(store, `${preparedPrefix}/report.json`));
}

/**
 * Reads every shard of one split and joins them into one. A split of one shard is read
 * in place (its data a view of the bytes read); several are copied once, each straight
 * from its bytes into the joined array (measured: two copies of the 500-image
 * pipeline's 75 MB, ~0.5 s of the job's load stage, before).
 */
export async function readSplit(store: ObjectStore, report: DatasetReport, split: SplitName): Promise<Shard> {
  const refs = report.shards.filter((s) => s.split === split);
  const shards = await Promise.all(refs.map(async (r) => parseShard(await store.get(r.key))));
  const dtype = shards[0]?.header.dtype ?? 'uint8';
  const shape = report.inputShape;
  if (shards.some((s) => s.header.dtype !== dtype)) throw new ShardFormatError(`the ${split} shards mix data types`);
  const records = shards.flatMap((s) => s.header.records);
  if (shards.length === 1) return { split, dtype, shape, records, data: valuesOf(dtype, shards[0].body) };
  const joined = new Uint8Array(shards.reduce((a, s) => a + s.body.byteLength, 0));
  let off = 0;
  for (const s of shards) {
    joined.set(s.body, off);
    off += s.body.byteLength;
  }
  return { split, dtype, shape, records, data: valuesOf(dtype, joined) };
}
