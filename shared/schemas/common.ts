import { z } from 'zod';

/**
 * Names of models, datasets and tasks end up in object keys and URLs, so they
 * are restricted to a safe alphabet: no slashes, no dots first, no `..`.
 */
export const NameSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/i, 'use 1-63 letters, digits, "-" or "_", starting with a letter or digit');
export type Name = z.infer<typeof NameSchema>;

/** Folder-bucket scratch files start with this; no user key may. */
export const RESERVED_KEY_PREFIX = '.tmp-';

/**
 * Whether a `/`-separated relative path is safe as (part of) an object key in
 * every adapter: no leading `/`, no empty, `.` or `..` segment, no backslash or
 * NUL, nothing that collides with the folder bucket's scratch files.
 */
export function isSafeRelativePath(p: string): boolean {
  return (
    p.length > 0 &&
    !p.startsWith('/') &&
    !p.includes('\\') &&
    !p.includes('\0') &&
    p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..' && !seg.startsWith(RESERVED_KEY_PREFIX))
  );
}

/** A version id or an alias name, as callers may name one in a request. */
export const VersionOrAliasSchema = z.string().regex(/^[a-z0-9_-]{1,64}$/i, 'use a version id or an alias name (letters, digits, "-" or "_")');

/** Model versions sort by time: `v<yyyymmddhhmmss>-<6 hex>`. */
export const VersionSchema = z.string().regex(/^v\d{14}-[0-9a-f]{6}$/, 'not a model version');

export const IsoDateSchema = z.string().datetime();
