/**
 * Output of `everest-system probe`: one JSON object per line with `--json` (for scripts), readable
 * lines otherwise. Colour and the live status line only when stdout is a terminal.
 */
import pc from 'picocolors';

export interface ProbeIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  /** aborts long operations and `watch` (Ctrl-C) */
  signal?: AbortSignal;
  /** force terminal behaviour on or off (default: stdout.isTTY) */
  tty?: boolean;
}

/** Exit codes of every probe subcommand. */
export const EXIT = {
  ok: 0,
  /** the daemon answered no / the operation ended in a failure state */
  failed: 1,
  /** bad input, unreadable files, broker unreachable */
  usage: 2,
  /** no reply within --timeout-s / --reply-timeout-s */
  noReply: 3,
  /** no end state within --timeout-s */
  timeout: 4,
  /** stopped with Ctrl-C */
  interrupted: 130,
} as const;

/** An error that ends a probe command with a message (no stack trace) and an exit code. */
export class ProbeError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.usage,
    readonly fields: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ProbeError';
  }
}

type Colors = ReturnType<typeof pc.createColors>;

const GOOD = new Set(['Installed', 'Uploaded', 'Accepted', 'AcceptedCanceled', 'SignatureVerified', 'Downloaded', 'true']);
const BAD = new Set([
  'DownloadFailed', 'InstallationFailed', 'InstallVerificationFailed', 'InvalidSignature', 'UploadFailure', 'BadMessage',
  'NotSupportedOperation', 'PermissionDenied', 'Rejected', 'InvalidCertificate', 'RevokedCertificate', 'false',
]);

export class Reporter {
  readonly json: boolean;
  readonly tty: boolean;
  readonly c: Colors;
  readonly #io: ProbeIO;
  #live: (() => string) | undefined;
  #liveShown = false;
  #liveTimer: NodeJS.Timeout | undefined;

  constructor(io: ProbeIO, json: boolean) {
    this.#io = io;
    this.json = json;
    this.tty = !json && (io.tty ?? io.stdout.isTTY === true);
    this.c = pc.createColors(this.tty);
  }

  /** A status or reply value, coloured by meaning (green success, red failure, yellow in between). */
  status(value: unknown): string {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    const key = typeof value === 'string' || typeof value === 'boolean' ? String(value) : '';
    if (GOOD.has(key)) return this.c.green(text);
    if (BAD.has(key)) return this.c.red(text);
    return this.c.yellow(text);
  }

  /**
   * One event: a JSON line `{"event": name, "t": ..., ...fields}` with --json, else `human` after
   * the local time (nothing when `human` is undefined).
   */
  event(name: string, fields: Record<string, unknown>, human?: string): void {
    if (this.json) {
      this.#write(`${JSON.stringify({ event: name, t: new Date().toISOString(), ...fields })}\n`);
      return;
    }
    if (human !== undefined) this.line(human);
  }

  /** A human line with the time in front (no-op with --json). */
  line(text: string): void {
    if (this.json) return;
    const now = new Date();
    const t = `${String(now.getHours()).padStart(2, '0')}:${String(now.getMinutes()).padStart(2, '0')}:${String(now.getSeconds()).padStart(2, '0')}.${String(now.getMilliseconds()).padStart(3, '0')}`;
    this.#write(`${this.c.dim(t)} ${text}\n`);
  }

  /** Plain text on stdout (human mode only), e.g. the result of firmware-sign. */
  plain(text: string): void {
    this.#write(`${text}\n`);
  }

  /** A message on stderr (both modes). */
  error(text: string): void {
    this.#clearLive();
    this.#io.stderr.write(`${text}\n`);
    this.#drawLive();
  }

  /** A status line kept at the bottom of the terminal and redrawn every 250 ms (terminal only). */
  startLive(render: () => string): void {
    if (!this.tty) return;
    this.#live = render;
    this.#drawLive();
    this.#liveTimer = setInterval(() => {
      this.#clearLive();
      this.#drawLive();
    }, 250);
    this.#liveTimer.unref();
  }

  stopLive(): void {
    clearInterval(this.#liveTimer);
    this.#liveTimer = undefined;
    this.#clearLive();
    this.#live = undefined;
  }

  #write(text: string): void {
    this.#clearLive();
    this.#io.stdout.write(text);
    this.#drawLive();
  }

  #clearLive(): void {
    if (this.#liveShown) {
      this.#io.stdout.write('\r\x1b[2K');
      this.#liveShown = false;
    }
  }

  #drawLive(): void {
    if (!this.#live) return;
    this.#io.stdout.write(this.#live());
    this.#liveShown = true;
  }
}

/** A JSON value for human output, shortened to `max` characters. */
export function show(value: unknown, max = 200): string {
  const text = value === undefined ? '(no value)' : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
