/** An in-process MQTT broker (aedes) for the embedded default and demos; tests use a real mosquitto. */
import net from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from './api.js';

export interface EmbeddedBroker {
  host: string;
  port: number;
  url: string;
  close(): Promise<void>;
}

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/** Starts the broker; when the port is taken it falls back to a free one and says so. */
export async function startEmbeddedBroker(host: string, port: number, log: Logger): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  try {
    await listen(server, port, host);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw err;
    log.warn({ port }, 'port of the embedded broker is in use; using a free port instead');
    await listen(server, 0, host);
  }
  const actual = (server.address() as net.AddressInfo).port;
  const url = `mqtt://${host.includes(':') ? `[${host}]` : host}:${actual}`;
  return {
    host,
    port: actual,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        aedes.close(() => server.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
      }),
  };
}
