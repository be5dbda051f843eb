import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { NameSchema } from '../schemas/common.js';

export const TenantSchema = z.object({
  id: NameSchema,
  apiKey: z.string().min(20),
  default: z.boolean().optional(),
});
export type Tenant = z.infer<typeof TenantSchema>;

/** `$TL_DATA_DIR/tenants.json`: the embedded default's tenants and their API keys. */
export const TenantsFileSchema = z.object({
  tenants: z.array(TenantSchema).min(1),
  /** Signs local upload URLs; made once so URLs survive a restart. */
  uploadSecret: z.string().min(32),
});
export type TenantsFile = z.infer<typeof TenantsFileSchema>;

export const newApiKey = () => `tl_${randomBytes(24).toString('base64url')}`;

/** Reads tenants.json, creating it with one default tenant on first start. */
export async function loadOrCreateTenants(dataDir: string): Promise<TenantsFile> {
  const file = path.join(dataDir, 'tenants.json');
  try {
    return TenantsFileSchema.parse(JSON.parse(await fs.readFile(file, 'utf8')));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const created: TenantsFile = { tenants: [{ id: 'default', apiKey: newApiKey(), default: true }], uploadSecret: randomBytes(32).toString('hex') };
  await fs.mkdir(dataDir, { recursive: true });
  // 0600: the file holds credentials.
  await fs.writeFile(file, JSON.stringify(created, null, 2), { mode: 0o600, flag: 'wx' }).catch(async (err) => {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  });
  return TenantsFileSchema.parse(JSON.parse(await fs.readFile(file, 'utf8')));
}

export function defaultTenant(file: TenantsFile): Tenant {
  return file.tenants.find((t) => t.default) ?? file.tenants[0];
}
