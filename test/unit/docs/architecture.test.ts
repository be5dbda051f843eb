import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The docs point at files that exist: README.md once sent readers to a DESIGN.md the
 * repository never had. Every Markdown file the docs name, and every repository path
 * ARCHITECTURE.md names, must be there; every training stage must be listed.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');
const DOCS = ['README.md', 'ARCHITECTURE.md', '.dependency-cruiser.cjs'];

describe('docs', () => {
  it('name only Markdown files that exist in the repository', () => {
    for (const doc of DOCS) {
      const named = [...read(doc).matchAll(/\b([A-Za-z][\w-]*\.md)\b/g)].map((m) => m[1]);
      expect(
        named.filter((f) => !existsSync(path.join(root, f))),
        doc,
      ).toEqual([]);
    }
  });

  it('ARCHITECTURE.md covers the stages, the ports, the bucket layout and the engines', () => {
    const arch = read('ARCHITECTURE.md');
    const headings = [...arch.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    expect(headings).toEqual(expect.arrayContaining(['The training job', 'Ports and adapters', 'Bucket layout (one bucket per tenant)', 'Engines']));
    for (const port of ['ObjectStore', 'EventQueue', 'JobRunner']) expect(arch).toContain(`\`${port}\` (\`shared/ports/`);
    for (const prefix of ['datasets/', 'prepared/', 'base-models/', 'models/', 'jobs/', 'cache/embeddings/'])
      expect(arch).toMatch(new RegExp(`^${prefix}`, 'm'));
  });

  it('ARCHITECTURE.md names only paths that exist, and every stage file', () => {
    const arch = read('ARCHITECTURE.md');
    const paths = [...arch.matchAll(/`((?:functions|shared|infra|bench|test|layers)\/[\w./-]+)`/g)].map((m) => m[1]);
    expect(paths.length).toBeGreaterThan(10);
    expect(paths.filter((p) => !existsSync(path.join(root, p)))).toEqual([]);
    const stages = readdirSync(path.join(root, 'functions/train/stages')).filter((f) => f.endsWith('.ts'));
    expect(stages.filter((f) => !arch.includes(`\`stages/${f}\``))).toEqual([]);
  });
});
