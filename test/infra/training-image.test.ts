import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { repoPath } from '../../infra/lib/paths.js';

describe('training image (infra/docker/train/Dockerfile)', () => {
  it('pins every base image by digest, on a supported Node.js line', async () => {
    const dockerfile = await readFile(repoPath('infra/docker/train/Dockerfile'), 'utf8');
    const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);

    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const image of froms) expect(image).toMatch(/^[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}$/);
    const nodeMajor = Number(/^node:(\d+)/.exec(froms.find((f) => f.startsWith('node:'))!)![1]);
    // 22 (maintenance to April 2027) or 24+; 20 reached end of life in April 2026.
    expect(nodeMajor).toBeGreaterThanOrEqual(22);
    expect(nodeMajor % 2).toBe(0);
  });

  it('installs tfjs-node-gpu from the lockfile, and only from it', async () => {
    const dockerfile = await readFile(repoPath('infra/docker/train/Dockerfile'), 'utf8');
    const lock = JSON.parse(await readFile(repoPath('package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; integrity?: string }> };
    const pkg = JSON.parse(await readFile(repoPath('package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      optionalDependencies: Record<string, string>;
    };

    expect(dockerfile).toMatch(/npm ci\b/);
    expect(dockerfile).not.toMatch(/npm (install|i)\s/);
    expect(dockerfile).toMatch(/require\.resolve\('@tensorflow\/tfjs-node-gpu'\)/);
    const locked = lock.packages['node_modules/@tensorflow/tfjs-node-gpu'];
    expect(locked.version).toBe(pkg.dependencies['@tensorflow/tfjs']);
    expect(locked.integrity).toMatch(/^sha512-/);
    expect(pkg.optionalDependencies['@tensorflow/tfjs-node-gpu']).toBe(locked.version);
  });
});
