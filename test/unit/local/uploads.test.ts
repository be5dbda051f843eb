import { request } from 'node:http';
import { readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPlatform, type TestPlatform } from '../../helpers/platform.js';

/** Streams `size` bytes to a URL with PUT, from one reused chunk: the client holds no copy of the body. */
function streamPut(url: string, size: number, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const chunk = Buffer.alloc(1024 * 1024, 7);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', headers: { 'content-length': String(size), ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        const n = Math.min(chunk.length, size - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

const rssMb = () => process.memoryUsage().rss / 1024 / 1024;

describe('local signed uploads', () => {
  let tp: TestPlatform;
  beforeAll(async () => {
    tp = await startTestPlatform();
  });
  afterAll(async () => tp.close());

  const urlsFor = async (dataset: string, files: Array<{ path: string; contentType?: string }>) => {
    const res = await tp.call('POST', `/datasets/${dataset}/uploads`, { files });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.uploads as Array<{ url: string; key: string; headers: Record<string, string> }>;
  };

  it('streams eight concurrent 95 MB uploads to disk with the server RSS within 200 MB of idle', async () => {
    // Prepare
    const size = 95 * 1024 * 1024;
    const uploads = await urlsFor(
      'big',
      Array.from({ length: 8 }, (_, i) => ({ path: `blobs/${i}.bin` })),
    );
    global.gc?.();
    const idle = rssMb();
    let peak = idle;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb())), 50);

    // Act
    const results = await Promise.all(uploads.map((u) => streamPut(u.url, size, u.headers)));
    clearInterval(sampler);
    peak = Math.max(peak, rssMb());

    // Assess: every upload stored whole, and memory stayed flat while 760 MB went by.
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(200));
    for (const u of uploads) expect((await stat(path.join(tp.platform.defaultTenant.bucketDir, u.key))).size).toBe(size);
    expect(peak - idle, `idle ${idle.toFixed(0)} MB, peak ${peak.toFixed(0)} MB`).toBeLessThan(200);
  });

  it('stores nothing of an upload that exceeds the limit, and leaves no temporary file', async () => {
    const [u] = await urlsFor('over', [{ path: 'a.bin' }]);
    // The declared length is within the limit; the stream is not (a lying client).
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(u.url, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } }, (r) => {
        let body = '';
        r.setEncoding('utf8');
        r.on('data', (d: string) => (body += d));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(1024 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < 101) {
          sent++;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error.code).toBe('PAYLOAD_TOO_LARGE');
    const dir = path.join(tp.platform.defaultTenant.bucketDir, 'datasets/over');
    expect(await readdir(dir).catch(() => [])).toEqual([]);
  });

  it('answers a full disk during an upload with 507 and a read-only one with 503, in the JSON error shape', async () => {
    const faultFile = path.join(tp.platform.dataDir, 'fault');
    const other = await startTestPlatform({ faultFile });
    try {
      const res = await other.call('POST', '/datasets/full/uploads', { files: [{ path: 'a.bin' }, { path: 'b.bin' }] });
      const [a, b] = res.body.uploads as Array<{ url: string }>;
      await writeFile(faultFile, 'ENOSPC');
      const full = await streamPut(a.url, 3 * 1024 * 1024);
      await writeFile(faultFile, 'EROFS');
      const readOnly = await streamPut(b.url, 1024);
      expect(full.status).toBe(507);
      expect(JSON.parse(full.body).error.code).toBe('INSUFFICIENT_STORAGE');
      expect(readOnly.status).toBe(503);
      expect(JSON.parse(readOnly.body).error.code).toBe('STORAGE_UNAVAILABLE');
    } finally {
      await other.close();
    }
  });

  it('refuses signatures that are not exactly lower-case hex of the right length, and expiries that are not plain numbers', async () => {
    const [u] = await urlsFor('sig', [{ path: 'a.txt' }]);
    const good = new URL(u.url);
    const sig = good.searchParams.get('sig')!;
    const variants = [
      (x: URL) => x.searchParams.set('sig', sig.toUpperCase()),
      (x: URL) => x.searchParams.set('sig', `${sig}zz`),
      (x: URL) => x.searchParams.set('sig', `${sig}00`),
      (x: URL) => x.searchParams.set('expires', ` ${x.searchParams.get('expires')}`),
      (x: URL) => x.searchParams.set('expires', `${x.searchParams.get('expires')}.0`),
    ];
    for (const change of variants) {
      const bad = new URL(good);
      change(bad);
      const res = await fetch(bad, { method: 'PUT', body: 'x' });
      expect(res.status, bad.search).toBe(403);
    }
    expect((await fetch(good, { method: 'PUT', body: 'x' })).status).toBe(200);
  });

  it('refuses a contentType with CR/LF or other control characters instead of echoing it into a header', async () => {
    for (const contentType of ['image/png\r\nX-Evil: 1', 'text/plain;\r\n a=b', 'image/jpeg\u0000']) {
      const res = await tp.call('POST', '/datasets/ct/uploads', { files: [{ path: 'a.png', contentType }] });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('INVALID_REQUEST');
      expect(JSON.stringify(res.body)).not.toContain('X-Evil: 1"');
    }
    const ok = await tp.call('POST', '/datasets/ct/uploads', { files: [{ path: 'a.png', contentType: 'image/png' }] });
    expect(ok.status).toBe(200);
  });
});
