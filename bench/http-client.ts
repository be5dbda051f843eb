/**
 * A client in its own process for the predict bench: sends the same POST one at a time over
 * one keep-alive connection and prints each round trip's time, in ms, as JSON on stdout.
 *
 *   TL_API_KEY=… node --import tsx bench/http-client.ts <url> <body file> <calls> [warm-up calls]
 *
 * A client inside the server's process (the bench's `fetch`) shares its event loop and its
 * heap, so the server's latency includes the client's work and garbage. autocannon runs in
 * its own process but reports whole milliseconds, too coarse for a 4–10 ms call; these
 * twenty lines of `node:http` time each call to the microsecond.
 */
import { Agent, request } from 'node:http';
import { readFile } from 'node:fs/promises';

const [url, bodyFile, callsArg, warmArg] = process.argv.slice(2);
const apiKey = process.env.TL_API_KEY;
const calls = Number(callsArg);
const warm = Number(warmArg ?? 3);
if (!url || !apiKey || !bodyFile || !Number.isInteger(calls) || calls < 1 || !Number.isInteger(warm) || warm < 0) {
  console.error('usage: TL_API_KEY=<key> http-client.ts <url> <body file> <calls> [warm-up calls]');
  process.exit(2);
}
const body = await readFile(bodyFile);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function call(): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', agent, headers: { 'x-api-key': apiKey, 'content-type': 'application/json', 'content-length': body.length } },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(res.statusCode) : reject(new Error(`predict answered ${res.statusCode}`))));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

for (let i = 0; i < warm; i++) await call();
const times: number[] = [];
for (let i = 0; i < calls; i++) {
  const s = performance.now();
  await call();
  times.push(performance.now() - s);
}
agent.destroy();
process.stdout.write(JSON.stringify({ times }));
