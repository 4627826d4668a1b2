/**
 * Download benchmark: our `download()` (stream to disk + SHA-256 on the fly) against
 * `curl -o` followed by `sha256sum`, on the same loopback HTTP server in the same run.
 *
 * Sizes: 64 MiB and 1 GiB (BENCH_DOWNLOAD_MB overrides, comma-separated). The body is generated
 * on the fly by the server (a repeated 1 MiB random block), and every file lands in a temp dir
 * that is removed afterwards. Ours runs in a child process (`node --import tsx`) and both sides
 * run under `/usr/bin/time` so their peak RSS can be compared.
 *
 * Run as `node --import tsx bench/download.ts --child <url> <dest>` it is that child.
 */
import { randomBytes, createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { download } from '../core/net/download.js';

const MiB = 1024 * 1024;
const here = fileURLToPath(import.meta.url);

interface Timed {
  ms: number;
  peakRssKb: number;
  stdout: string;
}

/** Runs a command under /usr/bin/time, returning wall time and peak RSS. */
async function timed(cmd: string, args: string[]): Promise<Timed> {
  const t0 = process.hrtime.bigint();
  const r = await execa('/usr/bin/time', ['-f', 'BENCH_RSS_KB=%M', cmd, ...args]);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const m = /BENCH_RSS_KB=(\d+)/.exec(r.stderr);
  return { ms, peakRssKb: m ? Number(m[1]) : NaN, stdout: r.stdout };
}

/** Loopback server streaming `size` bytes made of a repeated block. */
async function startServer(block: Buffer): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size'));
    res.writeHead(200, { 'content-length': String(size), 'content-type': 'application/octet-stream' });
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        const n = Math.min(block.length, size - sent);
        sent += n;
        if (!res.write(n === block.length ? block : block.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function expectedSha(block: Buffer, size: number): string {
  const h = createHash('sha256');
  for (let sent = 0; sent < size; sent += block.length) h.update(block.subarray(0, Math.min(block.length, size - sent)));
  return h.digest('hex');
}

export default async function run(): Promise<Record<string, unknown>> {
  const sizesMb = (process.env.BENCH_DOWNLOAD_MB ?? '64,1024').split(',').map(Number).filter((n) => n > 0);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bench-download-'));
  const block = randomBytes(MiB);
  const server = await startServer(block);
  const out: Record<string, unknown> = {};
  try {
    for (const mb of sizesMb) {
      const size = mb * MiB;
      const url = `${server.url}/file.bin?size=${size}`;
      const want = expectedSha(block, size);

      const oursDest = path.join(dir, `ours-${mb}.bin`);
      const ours = await timed(process.execPath, ['--import', 'tsx', here, '--child', url, oursDest]);
      const child = JSON.parse(ours.stdout.trim().split('\n').pop()!) as {
        ok: boolean; sha256?: string; downloadMs: number; baseRssKb: number; maxRssKb: number;
      };
      await fsp.rm(oursDest, { force: true });

      const curlDest = path.join(dir, `curl-${mb}.bin`);
      const curl = await timed('curl', ['-sS', '--fail', '-o', curlDest, url]);
      const sha = await timed('sha256sum', [curlDest]);
      const curlSha = sha.stdout.split(/\s+/)[0];
      await fsp.rm(curlDest, { force: true });

      const baseline = curl.ms + sha.ms;
      const row = {
        bytes: size,
        ours: {
          ok: child.ok && child.sha256 === want,
          downloadMs: Math.round(child.downloadMs),
          processMs: Math.round(ours.ms),
          peakRssMb: +(ours.peakRssKb / 1024).toFixed(1),
          /** RSS of node + tsx + our modules before the download started */
          startRssMb: +(child.baseRssKb / 1024).toFixed(1),
          /** peak RSS growth caused by the download itself */
          downloadRssGrowthMb: +((child.maxRssKb - child.baseRssKb) / 1024).toFixed(1),
        },
        curlThenSha256sum: {
          ok: curlSha === want,
          curlMs: Math.round(curl.ms),
          sha256sumMs: Math.round(sha.ms),
          peakRssMb: +(Math.max(curl.peakRssKb, sha.peakRssKb) / 1024).toFixed(1),
        },
        /** ours (download + hash inside the daemon) / (curl + sha256sum) */
        timeRatio: +(child.downloadMs / baseline).toFixed(2),
        /** the same with our process start (node + tsx) included */
        timeRatioWithStartup: +(ours.ms / baseline).toFixed(2),
        throughputMBps: +(size / MiB / (child.downloadMs / 1000)).toFixed(1),
      };
      out[`${mb}MiB`] = row;
      process.stdout.write(
        `download ${mb} MiB: ours ${row.ours.downloadMs} ms (${row.throughputMBps} MB/s, peak RSS ${row.ours.peakRssMb} MB of which ${row.ours.downloadRssGrowthMb} MB during the download) vs ` +
          `curl+sha256sum ${Math.round(baseline)} ms (peak RSS ${row.curlThenSha256sum.peakRssMb} MB): ratio ${row.timeRatio}` +
          ` (${row.timeRatioWithStartup} with node startup)${row.ours.ok && row.curlThenSha256sum.ok ? '' : ' CHECKSUM MISMATCH'}\n`,
      );
    }
  } finally {
    await server.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
  return out;
}

async function child(url: string, dest: string): Promise<void> {
  const baseRssKb = Math.round(process.memoryUsage().rss / 1024);
  const t0 = process.hrtime.bigint();
  const result = await download({
    url: new URL(url),
    dest,
    signal: new AbortController().signal,
    attempts: 1,
    retryIntervalMs: 0,
  });
  const downloadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  process.stdout.write(
    `${JSON.stringify({ ...result, downloadMs, baseRssKb, maxRssKb: process.resourceUsage().maxRSS })}\n`,
  );
}

if (process.argv[2] === '--child' && process.argv[1] && path.resolve(process.argv[1]) === here) {
  await child(process.argv[3]!, process.argv[4]!);
}
