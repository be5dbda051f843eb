import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * One tenant's deployment settings, from `tenants.json` or `-c tenant=<id>`.
 * Everything but the id has a default, so `-c tenant=acme` alone is a complete tenant.
 */
export const TenantConfigSchema = z.strictObject({
  /** Lowercase letters, digits and hyphens: it becomes part of the stack name. */
  id: z.string().regex(/^[a-z][a-z0-9-]{1,30}$/, 'tenant ids are 2-31 lowercase letters, digits or "-", starting with a letter'),
  /** API requests per second and burst per API key. @default { rateLimit: 10, burstLimit: 20 } */
  throttle: z.strictObject({ rateLimit: z.number().positive(), burstLimit: z.number().int().positive() }).default({ rateLimit: 10, burstLimit: 20 }),
  /** Requests per period per API key. @default { limit: 10000, period: "DAY" } */
  quota: z.strictObject({ limit: z.number().int().positive(), period: z.enum(['DAY', 'WEEK', 'MONTH']) }).default({ limit: 10_000, period: 'DAY' }),
  /**
   * Training capacity: `spot` (cheapest; retried on reclaim), `on-demand`, or
   * `spot-then-on-demand` (a Spot environment first, on-demand when Spot has none).
   * @default "spot"
   */
  capacity: z.enum(['spot', 'on-demand', 'spot-then-on-demand']).default('spot'),
  /** Upper bound of training vCPUs at once (a g4dn.xlarge has 4). @default 16 */
  maxvCpus: z.number().int().min(4).max(1024).default(16),
  /** Hours before a training attempt is stopped. @default 4 */
  jobTimeoutHours: z
    .number()
    .positive()
    .max(24 * 14)
    .default(4),
  /** Days prepared shards are kept; uploads and models are kept. @default 30 */
  preparedRetentionDays: z.number().int().positive().default(30),
  /**
   * Days job records under `jobs/` (status, progress, per-epoch checkpoints) are kept.
   * S3 lifecycle filters take a prefix, not `jobs/*\/checkpoint/`, so the whole record
   * expires; it must outlive the longest job (attempts × `jobTimeoutHours`). @default 30
   */
  jobsRetentionDays: z.number().int().positive().default(30),
  /** Delete the bucket and its objects on `cdk destroy`. @default false (the bucket is retained) */
  destroyData: z.boolean().default(false),
  /** Who the tenant's alarms notify (an SNS email subscription, confirmed by its owner). @default none: the topic has no subscriber */
  alarmEmail: z.email().optional(),
  /**
   * Minutes a training job may wait in RUNNABLE (no GPU capacity, or none that fits)
   * before Batch cancels it and its status says NO_CAPACITY. 10 minutes to 24 hours. @default 60
   */
  runnableTimeoutMinutes: z
    .number()
    .int()
    .min(10)
    .max(24 * 60)
    .default(60),
  /** p99 latency of the API (ms, over 5 minutes) above which the latency alarm fires. @default 10000 */
  apiLatencyP99AlarmMs: z.number().int().positive().default(10_000),
  /**
   * Reserved concurrency per function: the most instances it may run, and what it keeps
   * from the account's shared pool, so one tenant cannot starve the others.
   * `preprocessMaxConcurrency` caps how many SQS batches the event source hands it at once
   * (2 to 1000, at most `preprocess`).
   */
  concurrency: z
    .strictObject({
      predict: z.number().int().min(1).default(20),
      uploads: z.number().int().min(1).default(5),
      preprocess: z.number().int().min(2).default(4),
      preprocessMaxConcurrency: z.number().int().min(2).max(1000).default(2),
      jobEvents: z.number().int().min(1).default(2),
      authorizer: z.number().int().min(1).default(5),
    })
    .refine((c) => c.preprocessMaxConcurrency <= c.preprocess, 'preprocessMaxConcurrency must not exceed preprocess')
    .prefault({}),
});
export type TenantConfig = z.infer<typeof TenantConfigSchema>;

export const TenantsFileSchema = z.array(TenantConfigSchema).refine((ts) => new Set(ts.map((t) => t.id)).size === ts.length, 'tenant ids must be unique');

export interface LoadTenantsOptions {
  /** Value of `-c tenant=<id>`; a comma-separated list is accepted. */
  contextTenant?: string;
  /** Path of tenants.json; a missing file is fine. */
  file: string;
}

/**
 * Tenants to synthesise. With `-c tenant=<id>`, only those ids (taking their
 * settings from tenants.json when listed there); without it, every tenant of
 * tenants.json.
 */
export function loadTenants(options: LoadTenantsOptions): TenantConfig[] {
  const fromFile = existsSync(options.file) ? TenantsFileSchema.parse(JSON.parse(readFileSync(options.file, 'utf8'))) : [];
  const wanted = options.contextTenant
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!wanted?.length) return fromFile;
  return wanted.map((id) => fromFile.find((t) => t.id === id) ?? TenantConfigSchema.parse({ id }));
}
