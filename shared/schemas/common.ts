import { z } from 'zod';

/**
 * Names of models, datasets and tasks end up in object keys and URLs, so they
 * are restricted to a safe alphabet: no slashes, no dots first, no `..`.
 */
export const NameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/i, 'use 1-63 letters, digits, "-" or "_", starting with a letter or digit');
export type Name = z.infer<typeof NameSchema>;

/** Model versions sort by time: `v<yyyymmddhhmmss>-<6 hex>`. */
export const VersionSchema = z.string().regex(/^v\d{14}-[0-9a-f]{6}$/, 'not a model version');

export const IsoDateSchema = z.string().datetime();
