import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateShapesDataset, generateShapesImages } from '../../../shared/local/demo-data.js';
import { TrainSpecSchema } from '../../../shared/schemas/spec.js';

async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) =>
      join(e.parentPath, e.name)
        .slice(dir.length + 1)
        .split('\\')
        .join('/'),
    )
    .sort();
}

describe('generateShapesDataset', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'demo-data-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('writes a folder per label with images that decode at the reported size', async () => {
    // Prepare
    const dir = join(root, 'shapes');

    // Act
    const dataset = await generateShapesDataset(dir, { perClass: 6, seed: 3 });

    // Assess
    const files = await tree(dir);
    expect(files).toEqual(dataset.images.map((i) => i.path).sort());
    expect(files).toHaveLength(18);
    for (const label of ['circle', 'square', 'triangle']) {
      expect(dataset.images.filter((i) => i.label === label && i.path.startsWith(`${label}/`))).toHaveLength(6);
    }
    for (const image of dataset.images) {
      const meta = await sharp(join(dir, image.path)).metadata();
      expect({ path: image.path, format: meta.format, width: meta.width, height: meta.height }).toEqual({
        path: image.path,
        format: image.format,
        width: image.width,
        height: image.height,
      });
      expect(image.width).toBeGreaterThanOrEqual(96);
      expect(image.width).toBeLessThanOrEqual(128);
      expect(image.path.endsWith(image.format === 'jpeg' ? '.jpg' : '.png')).toBe(true);
    }
    // Both default formats and more than one size show up.
    expect(new Set(dataset.images.map((i) => i.format))).toEqual(new Set(['jpeg', 'png']));
    expect(new Set(dataset.images.map((i) => i.width)).size).toBeGreaterThan(3);
    expect(dataset.corrupt).toEqual([]);
    expect(dataset.spec).toBeUndefined();
  });

  it('is reproducible: the same seed gives byte-identical files, another seed different ones', async () => {
    // Act
    const a = await generateShapesDataset(join(root, 'a'), { perClass: 4, seed: 9, corrupt: 2 });
    const b = await generateShapesDataset(join(root, 'b'), { perClass: 4, seed: 9, corrupt: 2 });
    await generateShapesDataset(join(root, 'c'), { perClass: 4, seed: 10, corrupt: 2 });

    // Assess
    expect(b).toEqual({ ...a, dir: join(root, 'b') });
    const differing = [];
    for (const image of a.images) {
      const [x, y, z] = await Promise.all(['a', 'b', 'c'].map((d) => readFile(join(root, d, image.path)).catch(() => Buffer.alloc(0))));
      expect(x.equals(y), image.path).toBe(true);
      if (!x.equals(z)) differing.push(image.path);
    }
    expect(differing.length).toBe(a.images.length);
  });

  it('keeps earlier images unchanged when more are asked for', async () => {
    // Act
    const small = await generateShapesDataset(join(root, 'small'), { perClass: 2, seed: 5 });
    await generateShapesDataset(join(root, 'large'), { perClass: 5, seed: 5, classes: ['circle', 'star', 'square', 'triangle'] });

    // Assess
    for (const image of small.images) {
      const [x, y] = await Promise.all([readFile(join(root, 'small', image.path)), readFile(join(root, 'large', image.path))]);
      expect(x.equals(y), image.path).toBe(true);
    }
  });

  it('adds corrupt files that no decoder accepts, and train.json when a spec is given', async () => {
    // Prepare
    const dir = join(root, 'bad');

    // Act
    const dataset = await generateShapesDataset(dir, { perClass: 3, seed: 1, corrupt: 4, spec: { model: 'shapes', training: { epochs: 5 } } });

    // Assess
    expect(dataset.corrupt).toEqual(['circle/corrupt-000.jpg', 'square/corrupt-001.jpg', 'triangle/corrupt-002.png', 'circle/corrupt-003.jpg']);
    const files = await tree(dir);
    for (const path of dataset.corrupt) {
      expect(files).toContain(path);
      await expect(sharp(join(dir, path)).raw().toBuffer(), path).rejects.toThrow();
    }
    // The truncated JPEG still looks like one, so only decoding can tell.
    const truncated = await readFile(join(dir, dataset.corrupt[0]));
    expect([...truncated.subarray(0, 2)]).toEqual([0xff, 0xd8]);
    expect((await readFile(join(dir, dataset.corrupt[1]), 'utf8')).startsWith('This is a text file')).toBe(true);
    expect(dataset.spec).toBe('train.json');
    const spec = JSON.parse(await readFile(join(dir, 'train.json'), 'utf8'));
    expect(TrainSpecSchema.parse(spec)).toMatchObject({ model: 'shapes', training: { epochs: 5 } });
    expect(files).toHaveLength(9 + 4 + 1);
  });

  it.each([
    [{ classes: [] }, 'at least one shape'],
    [{ classes: ['hexagon'] }, 'unknown shape "hexagon"'],
    [{ classes: ['circle', 'circle'] }, 'must not repeat'],
    [{ perClass: -1 }, 'perClass'],
    [{ minSize: 200, maxSize: 100 }, 'minSize'],
    [{ formats: ['gif'] }, 'unknown format "gif"'],
    [{ corrupt: 1.5 }, 'corrupt'],
    [{ maxRotation: 270 }, 'maxRotation'],
  ])('rejects bad options %j', async (options, message) => {
    // Act
    const failure = generateShapesDataset(join(root, 'x'), options as never);

    // Assess
    await expect(failure).rejects.toThrow(message);
  });
});

describe('generateShapesImages', () => {
  it('returns labelled images in memory, distinct from the dataset drawn with the same seed', async () => {
    // Prepare
    const root = await mkdtemp(join(tmpdir(), 'demo-images-'));
    const dataset = await generateShapesDataset(root, { perClass: 3, seed: 1 });

    // Act
    const images = await generateShapesImages({ perClass: 3, seed: 1, formats: ['png'], classes: ['circle', 'square', 'triangle'] });
    const again = await generateShapesImages({ perClass: 3, seed: 1, formats: ['png'] });

    // Assess
    expect(images.map((i) => i.label)).toEqual(['circle', 'circle', 'circle', 'square', 'square', 'square', 'triangle', 'triangle', 'triangle']);
    expect(images.every((i, k) => i.buffer.equals(again[k].buffer))).toBe(true);
    const trainBytes = await Promise.all(dataset.images.map((i) => readFile(join(root, i.path))));
    for (const image of images) {
      const meta = await sharp(image.buffer).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['png', image.width, image.height]);
      expect(trainBytes.some((b) => b.equals(image.buffer))).toBe(false);
    }
    await rm(root, { recursive: true, force: true });
  });

  it('defaults to 10 per class in the two default formats', async () => {
    // Act
    const images = await generateShapesImages();

    // Assess
    expect(images).toHaveLength(30);
    expect(new Set(images.map((i) => i.format))).toEqual(new Set(['jpeg', 'png']));
  });
});

describe('demo-data script', () => {
  it('writes a dataset from the command line', async () => {
    // Prepare
    const root = await mkdtemp(join(tmpdir(), 'demo-script-'));
    const script = fileURLToPath(new URL('../../../shared/local/demo-data.ts', import.meta.url));

    // Act
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', script, join(root, 'ds'), '--per-class', '2', '--corrupt', '1', '--model', 'demo'],
      {
        cwd: fileURLToPath(new URL('../../..', import.meta.url)),
      },
    );

    // Assess
    expect(stdout).toContain('wrote 6 images and 1 corrupt files and train.json');
    expect(await tree(join(root, 'ds'))).toHaveLength(8);
    expect(JSON.parse(await readFile(join(root, 'ds', 'train.json'), 'utf8'))).toEqual({ model: 'demo' });
    await rm(root, { recursive: true, force: true });
  });
});
