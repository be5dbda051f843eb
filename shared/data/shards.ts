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
  const header: ShardHeader = { format: 'tl-shard-1', split: shard.split, dtype: shard.dtype, shape: shard.shape, records: shard.records };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad the header so float32 data starts 4-byte aligned.
  const pad = Buffer.alloc((4 - ((4 + json.length) % 4)) % 4, 0x20);
  const body = Buffer.from(shard.data.buffer, shard.data.byteOffset, shard.data.byteLength);
  const lenPadded = Buffer.alloc(4);
  lenPadded.writeUInt32LE(json.length + pad.length, 0);
  return Buffer.concat([lenPadded, json, pad, body]);
}

export function decodeShard(buf: Buffer): Shard {
  if (buf.length < 4) throw new ShardFormatError('shard too short');
  const hlen = buf.readUInt32LE(0);
  if (4 + hlen > buf.length) throw new ShardFormatError('shard header runs past the end');
  const header = ShardHeaderSchema.parse(JSON.parse(buf.subarray(4, 4 + hlen).toString('utf8')));
  const n = header.records.length * recordSize(header.shape);
  const start = 4 + hlen;
  const bytes = header.dtype === 'uint8' ? n : n * 4;
  if (buf.length - start !== bytes) throw new ShardFormatError(`shard body has ${buf.length - start} bytes, expected ${bytes}`);
  const copy = new Uint8Array(bytes);
  copy.set(buf.subarray(start));
  const data = header.dtype === 'uint8' ? copy : new Float32Array(copy.buffer);
  return { split: header.split, dtype: header.dtype, shape: header.shape, records: header.records, data };
}

export async function readReport(store: ObjectStore, preparedPrefix: string): Promise<DatasetReport> {
  return DatasetReportSchema.parse(await getJson(store, `${preparedPrefix}/report.json`));
}

/** Reads every shard of one split and joins them into one. */
export async function readSplit(store: ObjectStore, report: DatasetReport, split: SplitName): Promise<Shard> {
  const refs = report.shards.filter((s) => s.split === split);
  const shards = await Promise.all(refs.map(async (r) => decodeShard(await store.get(r.key))));
  const dtype = shards[0]?.dtype ?? 'uint8';
  const shape = report.inputShape;
  const total = shards.reduce((a, s) => a + s.data.length, 0);
  const data = dtype === 'uint8' ? new Uint8Array(total) : new Float32Array(total);
  let off = 0;
  for (const s of shards) {
    data.set(s.data, off);
    off += s.data.length;
  }
  return { split, dtype, shape, records: shards.flatMap((s) => s.records), data };
}
