import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeImage, ImageDecodeError, sniffImageFormat } from '../../../shared/data/images.js';
import { BLUE, GREEN, RED, solidImage, truncatedJpeg, type Rgb } from './helpers.js';

/** Asserts every pixel of an HWC RGB buffer is within `tol` of a colour. */
function expectAllPixels(pixels: Uint8Array, colour: Rgb, tol: number) {
  for (let i = 0; i < pixels.length; i += 3) {
    expect(Math.abs(pixels[i] - colour.r)).toBeLessThanOrEqual(tol);
    expect(Math.abs(pixels[i + 1] - colour.g)).toBeLessThanOrEqual(tol);
    expect(Math.abs(pixels[i + 2] - colour.b)).toBeLessThanOrEqual(tol);
  }
}

async function decodeError(bytes: Buffer, options?: { maxPixels?: number }): Promise<ImageDecodeError> {
  const err = await decodeImage(bytes, [8, 8, 3], options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImageDecodeError);
  return err as ImageDecodeError;
}

describe('decodeImage', () => {
  it.each([
    ['png', 0],
    ['webp', 0],
    ['jpeg', 6],
  ] as const)('decodes a %s to h×w×3 uint8 HWC of the right colour', async (format, tol) => {
    // Prepare
    const bytes = await solidImage(format, GREEN, { width: 40, height: 30 });

    // Act
    const pixels = await decodeImage(bytes, [5, 7, 3]);

    // Assess
    expect(pixels).toBeInstanceOf(Uint8Array);
    expect(pixels.length).toBe(5 * 7 * 3);
    expectAllPixels(pixels, GREEN, tol);
  });

  it('flattens transparency onto white', async () => {
    const bytes = await solidImage('png', RED, { alpha: 0 });

    const pixels = await decodeImage(bytes, [4, 4, 3]);

    expectAllPixels(pixels, { r: 255, g: 255, b: 255 }, 0);
  });

  it('applies the EXIF orientation, so a rotated phone photo comes out upright', async () => {
    // Prepare: stored 32×16 with red on the left, blue on the right; orientation 6
    // means "rotate 90° clockwise to display", so upright the red half is on top.
    const w = 32;
    const h = 16;
    const raw = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set(x < w / 2 ? [RED.r, RED.g, RED.b] : [BLUE.r, BLUE.g, BLUE.b], (y * w + x) * 3);
    const bytes = await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
      .jpeg({ quality: 100 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(bytes).metadata()).orientation).toBe(6);

    // Act: one column, two rows: the top half and the bottom half of the upright image.
    const pixels = await decodeImage(bytes, [2, 1, 3]);

    // Assess: unrotated, both pixels would be the same red/blue mix.
    expectAllPixels(pixels.subarray(0, 3), RED, 12);
    expectAllPixels(pixels.subarray(3, 6), BLUE, 12);
  });

  it('gives one luminance channel for c = 1', async () => {
    const bytes = await solidImage('png', { r: 255, g: 255, b: 255 });

    const pixels = await decodeImage(bytes, [3, 2, 1]);

    expect(Array.from(pixels)).toEqual([255, 255, 255, 255, 255, 255]);
  });

  it.each(['gif', 'tiff'] as const)('refuses %s as not a JPEG, PNG or WebP image', async (format) => {
    const err = await decodeError(await solidImage(format, RED));

    expect(err.reason).toBe('unsupported-format');
    expect(err.message).toBe('not a JPEG, PNG or WebP image');
  });

  it('refuses SVG and text named like an image', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="red"/></svg>');
    const text = Buffer.from('this is not a picture\n');

    expect((await decodeError(svg)).reason).toBe('unsupported-format');
    expect((await decodeError(text)).message).toBe('not a JPEG, PNG or WebP image');
  });

  it('refuses truncated JPEG data as corrupt', async () => {
    const err = await decodeError(await truncatedJpeg());

    expect(err.reason).toBe('corrupt');
    expect(err.message).toMatch(/^corrupt image data/);
  });

  it('refuses a PNG with a valid signature and garbage after it as corrupt', async () => {
    const png = await solidImage('png', RED);
    const garbled = Buffer.concat([png.subarray(0, 8), Buffer.alloc(200, 0x41)]);

    expect((await decodeError(garbled)).reason).toBe('corrupt');
  });

  it('refuses an image over the pixel cap before decoding it (decompression bomb)', async () => {
    // A 4000×4000 solid PNG is a small file but 48 MB of pixels.
    const bomb = await solidImage('png', RED, { width: 4000, height: 4000 });
    expect(bomb.length).toBeLessThan((4000 * 4000 * 3) / 100);

    const err = await decodeError(bomb, { maxPixels: 1_000_000 });

    expect(err.reason).toBe('too-large');
    expect(err.message).toMatch(/1000000/);
  });

  it('rejects a target shape it cannot produce', async () => {
    const bytes = await solidImage('png', RED);

    await expect(decodeImage(bytes, [4, 4, 4])).rejects.toThrow(RangeError);
    await expect(decodeImage(bytes, [0, 4, 3])).rejects.toThrow(RangeError);
  });
});

describe('sniffImageFormat', () => {
  it('knows the three accepted signatures and nothing else', async () => {
    expect(sniffImageFormat(await solidImage('jpeg', RED))).toBe('jpeg');
    expect(sniffImageFormat(await solidImage('png', RED))).toBe('png');
    expect(sniffImageFormat(await solidImage('webp', RED))).toBe('webp');
    expect(sniffImageFormat(await solidImage('gif', RED))).toBeUndefined();
    expect(sniffImageFormat(Buffer.from('RIFF0000WAVE'))).toBeUndefined();
    expect(sniffImageFormat(Buffer.alloc(0))).toBeUndefined();
  });
});
