/**
 * A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET: a small python3
 * listener (Node has no unix datagram sockets) that prints every datagram as one JSON line.
 * Stopped at the end of the test.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { onTestFinished } from 'vitest';

const LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("listening"), flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

export interface NotifySocket {
  path: string;
  /** datagrams received so far, in order */
  messages: string[];
  /** resolves with the first datagram (past or future) that matches */
  waitFor(match: RegExp, timeoutMs?: number): Promise<string>;
}

export async function startNotifySocket(dir: string): Promise<NotifySocket> {
  const socketPath = path.join(dir, 'notify.sock');
  const child = spawn('python3', ['-c', LISTENER, socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
  });
  const messages: string[] = [];
  const waiters = new Set<() => void>();
  let buffered = '';
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const listening = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`notify listener exited (${code}): ${stderr}`)));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const value = JSON.parse(buffered.slice(0, nl)) as string;
        buffered = buffered.slice(nl + 1);
        if (value === 'listening') resolve();
        else messages.push(value);
      }
      for (const w of waiters) w();
    });
  });
  await listening;
  return {
    path: socketPath,
    messages,
    waitFor: (match, timeoutMs = 15_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const hit = messages.find((m) => match.test(m));
          if (hit === undefined) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no datagram matching ${String(match)} within ${timeoutMs} ms; got ${JSON.stringify(messages)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
  };
}
