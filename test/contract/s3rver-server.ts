/**
 * Runs s3rver on 127.0.0.1 (free port) until killed, printing `{"port":N}` once
 * it listens. Started by s3rver-harness.ts in its own process because s3rver's
 * ListObjectsV2 continuation tokens use DES, which Node's OpenSSL 3 only offers
 * with `--openssl-legacy-provider`; the flag stays out of the test process.
 * Usage: node --openssl-legacy-provider --import tsx s3rver-server.ts <dir> <bucket>
 */
import S3rver from 's3rver';

const [directory, bucket] = process.argv.slice(2);
if (!directory || !bucket) throw new Error('usage: s3rver-server.ts <dir> <bucket>');
const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket }] });
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.on('SIGTERM', () => {
  void server.close().finally(() => process.exit(0));
});
