/**
 * A real mosquitto broker per test, on a free loopback port (recipe: shared os-tools.md §1).
 *
 *   const broker = await startMosquitto();
 *   ... broker.url ...
 *   await broker.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface Broker {
  port: number;
  url: string;
  /** everything mosquitto logged so far */
  log(): string;
  stop(): Promise<void>;
  /** stop, then start again on the same port (clients reconnect) */
  restart(): Promise<void>;
  /** start again after stop() */
  start(): Promise<void>;
}

export interface MosquittoOptions {
  /** extra config lines (auth, TLS, set_tcp_nodelay ...) */
  extraConfig?: string[];
}

/** A free TCP port on 127.0.0.1 (bind 0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<Broker> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mosquitto-'));
  let port = await freePort();
  let child: ChildProcess | undefined;
  let output = '';

  const launch = async (attempt = 0, keepPort = false): Promise<void> => {
    mkdirSync(dir, { recursive: true });
    const conf = path.join(dir, 'mosquitto.conf');
    writeFileSync(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        'persistence false',
        'log_dest stderr',
        'log_type error',
        'log_type warning',
        'log_type notice',
        'log_type information',
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        ...(options.extraConfig ?? []),
        '',
      ].join('\n'),
    );
    const proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    // a test process that ends without stopping its broker (a crashed or killed worker) takes it along
    const killOnExit = () => proc.kill('SIGKILL');
    process.once('exit', killOnExit);
    proc.once('exit', () => process.off('exit', killOnExit));
    const ready = await new Promise<boolean>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (/running/.test(output.split('\n').slice(-5).join('\n'))) resolve(true);
        if (/Address already in use/.test(chunk.toString())) resolve(false);
      };
      proc.stderr!.on('data', onData);
      proc.once('error', reject);
      proc.once('exit', (code) => resolve(code === 0 ? true : false));
    });
    if (!ready) {
      proc.kill('SIGKILL');
      if (attempt >= 20) throw new Error(`mosquitto did not start:\n${output}`);
      if (keepPort) await new Promise((r) => setTimeout(r, 100));
      else port = await freePort();
      return launch(attempt + 1, keepPort);
    }
  };

  const stop = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  };

  await launch();
  return {
    get port() {
      return port;
    },
    get url() {
      return `mqtt://127.0.0.1:${port}`;
    },
    log: () => output,
    stop: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    start: () => launch(0, true),
    restart: async () => {
      await stop();
      await launch(0, true);
    },
  };
}
