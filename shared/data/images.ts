import sharp from 'sharp';

/**
 * One image decoder for training and serving: preprocessing writes these exact
 * pixels into shards and the predict function calls the same function on request
 * images, so a model never sees pixels prepared differently from what it learned on.
 */

/** Formats accepted from users. Everything else (GIF, SVG, TIFF, HEIF, ...) is refused. */
export type ImageFormat = 'jpeg' | 'png' | 'webp';

/** Why an image was refused; `reason` is stable for reports and error codes. */
export type ImageDecodeReason = 'unsupported-format' | 'corrupt' | 'too-large';

export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
  constructor(
    readonly reason: ImageDecodeReason,
    message: string,
  ) {
    super(message);
  }
}

export interface DecodeImageOptions {
  /**
   * Largest width × height accepted, checked from the header before any pixel is
   * decoded, so a small file that claims to be huge (a decompression bomb) is
   * refused instead of exhausting memory. 50 MP covers phone cameras up to 48 MP
   * and decodes to at most 150 MB of RGB.
   * @default 50_000_000
   */
  maxPixels?: number;
}

export const DEFAULT_MAX_PIXELS = 50_000_000;

/**
 * Sniffs the container from its first bytes. Checking the signature ourselves
 * means libvips never parses formats we do not accept (SVG, TIFF, PDF, ...),
 * which keeps untrusted uploads away from those loaders entirely.
 */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  const b = bytes;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a)
    return 'png';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'webp';
  return undefined;
}

function ascii(b: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...b.subarray(from, to));
}

/**
 * Decodes a JPEG, PNG or WebP image to `h × w × c` uint8 pixels in HWC order
 * (c = 3: sRGB; c = 1: luminance).
 *
 * - EXIF orientation is applied, so a phone photo is upright as its owner saw it.
 * - Colour is converted to sRGB (ICC profiles honoured); transparency is flattened
 *   onto white, because most transparent uploads are logos and cut-outs drawn to be
 *   seen on a light page, and black would turn their transparent areas into dark blobs.
 * - The image is resized to exactly h × w with `fill` (each axis scaled on its own,
 *   no crop). Cover + centre crop would keep proportions but silently cut off objects
 *   near the edges and break labels given in image coordinates (e.g. a box regression
 *   task in relative [0, 1] coordinates maps linearly under fill, not under a crop).
 *   The aspect distortion is the same at training and serving time, since both call
 *   this function.
 *
 * @throws ImageDecodeError for a format other than JPEG/PNG/WebP, corrupt or
 *   truncated data, or an image larger than `maxPixels`.
 */
export async function decodeImage(bytes: Buffer | Uint8Array, shape: readonly [number, number, number], options: DecodeImageOptions = {}): Promise<Uint8Array> {
  const [h, w, c] = shape;
  if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0) || (c !== 3 && c !== 1)) {
    throw new RangeError(`decodeImage: unsupported target shape [${shape.join(', ')}]; expected [h, w, 3] or [h, w, 1]`);
  }
  const format = sniffImageFormat(bytes);
  if (!format) throw new ImageDecodeError('unsupported-format', 'not a JPEG, PNG or WebP image');
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;

  try {
    // failOn 'error' refuses truncated and broken pixel data but tolerates the
    // benign warnings many cameras' JPEGs trigger (e.g. stray bytes before a marker).
    const open = () => sharp(bytes, { failOn: 'error', limitInputPixels: maxPixels, autoOrient: true });
    // The header checks and the decode run side by side on the libuv pool: one
    // after the other, the header read added a thread hop to every decode (about
    // 0.4 ms of a 4 ms decode for a predict request). The decode is bounded by
    // limitInputPixels either way, and the header's verdict is awaited first, so the
    // errors are the same as when it ran alone.
    const decoded = open()
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .resize(w, h, { fit: 'fill' })
      .toColourspace(c === 3 ? 'srgb' : 'b-w')
      // Alpha is gone after flatten; removeAlpha also drops any second grey channel.
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    decoded.catch(() => {}); // handled below; not an unhandled rejection while the header is read
    try {
      const meta = await open().metadata();
      if (meta.format !== format) throw new ImageDecodeError('unsupported-format', 'not a JPEG, PNG or WebP image');
      if (meta.width * meta.height > maxPixels) {
        throw new ImageDecodeError('too-large', `image is ${meta.width}×${meta.height} pixels, more than the ${maxPixels} allowed`);
      }
    } catch (err) {
      // A refused image answers once its decode has stopped too: no work of a call outlives it.
      await decoded.catch(() => {});
      throw err;
    }
    const { data, info } = await decoded;
    if (info.width !== w || info.height !== h || info.channels !== c || data.length !== h * w * c) {
      throw new ImageDecodeError('corrupt', `decoder returned ${info.width}×${info.height}×${info.channels}, expected ${w}×${h}×${c}`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (err) {
    if (err instanceof ImageDecodeError) throw err;
    const detail = err instanceof Error ? err.message.split('\n')[0] : String(err);
    if (/pixel limit/i.test(detail)) throw new ImageDecodeError('too-large', `image has more than the ${maxPixels} pixels allowed`);
    throw new ImageDecodeError('corrupt', `corrupt image data (${format}: ${detail})`);
  }
}
