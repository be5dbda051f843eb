/**
 * One temporary bucket for tests: a real FsObjectStore over a fresh directory, so
 * tests exercise the embedded adapter rather than a fake with its own behaviour.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FsObjectStore } from '../../shared/adapters/local/fs-object-store.js';

export interface TempStore {
  store: FsObjectStore;
  /** The directory behind the store. */
  root: string;
  /** The fault-injection file beside the directory, when asked for (see `FsObjectStoreOptions.faultFile`). */
  faultFile?: string;
  /** Removes the directory and everything in it. */
  cleanup: () => Promise<void>;
}

/**
 * @param prefix names the directory under the OS temp dir, to tell tests' leftovers apart. @default "tl-test-"
 * @param options.faultFile gives the store a fault-injection file `<dir>.fault`, removed with the directory.
 */
export async function tempStore(prefix = 'tl-test-', options: { faultFile?: boolean } = {}): Promise<TempStore> {
  const root = await mkdtemp(path.join(tmpdir(), prefix));
  const faultFile = options.faultFile ? `${root}.fault` : undefined;
  return {
    store: new FsObjectStore({ root, faultFile }),
    root,
    faultFile,
    cleanup: async () => {
      await rm(root, { recursive: true, force: true });
      if (faultFile) await rm(faultFile, { force: true });
    },
  };
}
