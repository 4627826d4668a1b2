/**
 * Seeded generator of hostile e2m messages for the fuzz suite.
 *
 * Every message targets one e2m name (the five requests, the two commands, the heartbeat, or an
 * unknown name) and says what the daemon owes in return:
 *   - `expect: 'reply'`: a valid own replyTo is intact in the message: exactly one schema-valid reply
 *   - `expect: 'maybe'`: a valid replyTo may or may not survive (randomly truncated JSON): at most one
 *   - `expect: 'none'`: no valid replyTo: no reply at all
 * Hosts in generated URLs are only `*.invalid` names and closed loopback ports, so a request that is
 * accepted makes the plugins fail fast without reaching anything outside this machine.
 */
import { REQUEST_OPERATIONS } from '../../core/api.js';

/** mulberry32: small, fast, good enough for input generation; same seed, same sequence */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Expect = 'reply' | 'maybe' | 'none';

export interface FuzzMessage {
  /** sequence number */
  n: number;
  /** e2m name (may be unknown) */
  name: string;
  payload: Buffer;
  /** reply id placed in headers.replyTo (own module), when any */
  replyId?: string;
  expect: Expect;
  /** short label of what was generated, for failure reports */
  kind: string;
}

export interface GenOptions {
  moduleId: string;
  /** closed loopback ports: accepted requests fail fast there */
  closedPorts: number[];
  /** how often a message carries a 1 MB+ string (0..1) */
  hugeRate?: number;
}

const REQUESTS = REQUEST_OPERATIONS as readonly string[];
const UNKNOWN_NAMES = ['update_firmwar', 'UPDATE_FIRMWARE', 'reply', 'heartbeat2', 'get_boot_reason ', '..', 'm2e', 'foo', 'ü-name', 'x'.repeat(200)];
const HEARTBEATS = ['0', '1', '42', '18446744073709551615', '18446744073709551616', '-1', '1.5', '1e3', '"7"', 'null', '', ' 12 ', '0x10', '9'.repeat(400), '[1]', '{"a":1}'];

export class FuzzGenerator {
  readonly seed: number;
  readonly #r: () => number;
  readonly #o: Required<GenOptions>;
  #n = 0;
  readonly #replyBase: string;

  constructor(seed: number, options: GenOptions) {
    this.seed = seed;
    this.#r = prng(seed);
    this.#o = { hugeRate: 0.004, ...options };
    this.#replyBase = `everest_api/1/system/${options.moduleId}/m2e/reply/`;
  }

  // -- primitives -----------------------------------------------------------
  #int(lo: number, hi: number): number {
    return lo + Math.floor(this.#r() * (hi - lo + 1));
  }
  #chance(p: number): boolean {
    return this.#r() < p;
  }
  #pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.#r() * xs.length)]!;
  }
  #str(len: number, alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:?&=%@'): string {
    let s = '';
    for (let i = 0; i < len; i++) s += alphabet[Math.floor(this.#r() * alphabet.length)];
    return s;
  }
  #nastyString(): string {
    return this.#pick([
      '', ' ', '\u0000', '\u0000\u0001\u001f', '\ud800', '\uffff', '💥'.repeat(50), 'a\nb\r\nc', '"; rm -rf / #', '$(reboot)', '`reboot`',
      '../../../../etc/passwd', '%00', '\\', '{{7*7}}', '<script>', 'Accepted', 'PowerUp', 'true', 'null', this.#str(this.#int(1, 3000)),
      'x'.repeat(70_000),
    ]);
  }
  #replyId(): string {
    return `f${this.seed.toString(36)}-${(this.#n).toString(36)}-${this.#str(6, 'abcdef0123456789')}`;
  }
  #closedPort(): number {
    return this.#pick(this.#o.closedPorts);
  }

  /** a timestamp, valid or not */
  #timestamp(valid: boolean): unknown {
    if (valid) {
      const t = Date.UTC(2020, 0, 1) + Math.floor(this.#r() * 20 * 365 * 86_400_000);
      const iso = new Date(t).toISOString();
      return this.#pick([iso, iso.replace('Z', '+02:00'), iso.replace(/\.\d+Z$/, 'Z')]);
    }
    return this.#pick([
      '', 'yesterday', '2024-13-45T99:99:99Z', '2024-02-30T00:00:00Z', '2016-12-31T23:59:60Z', '0000-00-00T00:00:00Z', '+275760-09-13T00:00:00.000Z',
      '-000001-01-01T00:00:00Z', '2024-01-01', '2024-01-01T00:00:00', '1e308', '2024-01-01T00:00:00Z\u0000', '9999-12-31T23:59:59.9999999999Z',
      1_700_000_000, -1, null, true, [], {}, 'T'.repeat(5000),
    ]);
  }

  /** a location: usable (closed loopback port / .invalid host) or hostile */
  #url(usable: boolean, schemes: readonly string[]): unknown {
    const port = this.#closedPort();
    const scheme = this.#pick(schemes);
    if (usable) {
      return this.#pick([
        `${scheme}://127.0.0.1:${port}/fw-${this.#str(8, 'abc123')}.bin`,
        `${scheme}://user:s3cret-${this.#str(4)}@127.0.0.1:${port}/path?token=abc&x=1`,
        `${scheme}://fw.example.invalid/${this.#str(10, 'abc')}`,
        `${scheme}://[::1]:${port}/x`,
        `${scheme}://localhost:${port}/x`,
      ]);
    }
    return this.#pick([
      'file:///etc/shadow', 'file:///proc/self/environ', 'javascript:alert(1)', 'data:text/plain,hello', 'gopher://127.0.0.1:' + port + '/_',
      `http://127.0.0.1:${port}/a b`, `http://127.0.0.1:${port}/\u0000`, `http://127.0.0.1:${port}/;reboot`, `http://$(reboot).invalid/`,
      `http://127.0.0.1:${port}/` + 'a'.repeat(3000), `http://-invalid-/`, `http:///nohost`, 'http://', '://', '', ' ', `ftp://127.0.0.1:${port}/%0d%0aQUIT`,
      `https://x.invalid:99999/`, `https://x.invalid:-1/`, `http://0x7f.1:${port}/`, `http://user@:${port}/`, `ws://127.0.0.1:${port}/`,
      `\\\\share.invalid\\fw.bin`, `http://127.0.0.1:${port}/\u202e.bin`, `HTTP://X.INVALID/UPPER`, `http://xn--nxasmq6b.invalid/`,
      123, null, true, [`http://127.0.0.1:${port}/`], { href: 'http://x.invalid' },
    ]);
  }

  #validPayload(op: string): unknown {
    switch (op) {
      case 'update_firmware': {
        const p: Record<string, unknown> = { location: this.#url(true, ['http', 'https', 'ftp', 'ftps']), request_id: this.#int(-1, 1_000_000) };
        if (this.#chance(0.5)) p.retries = this.#int(1, 3);
        if (this.#chance(0.5)) p.retry_interval_s = this.#int(0, 1);
        if (this.#chance(0.2)) p.retrieve_timestamp = this.#timestamp(true);
        if (this.#chance(0.2)) p.install_timestamp = this.#timestamp(true);
        return p;
      }
      case 'upload_logs': {
        const p: Record<string, unknown> = { location: this.#url(true, ['http', 'https', 'ftp', 'ftps']) };
        if (this.#chance(0.8)) p.request_id = this.#int(-1, 1_000_000);
        if (this.#chance(0.5)) p.retries = this.#int(1, 2);
        if (this.#chance(0.5)) p.retry_interval_s = 0;
        if (this.#chance(0.3)) p.oldest_timestamp = this.#timestamp(true);
        if (this.#chance(0.3)) p.latest_timestamp = this.#timestamp(true);
        if (this.#chance(0.3)) p.type = this.#pick(['DiagnosticsLog', 'SecurityLog', 'DataCollectorLog']);
        return p;
      }
      case 'is_reset_allowed':
        return this.#pick(['Soft', 'Hard', 'NotSpecified']);
      case 'set_system_time':
        return this.#timestamp(true);
      case 'reset':
        return { type: this.#pick(['Soft', 'Hard', 'NotSpecified']), scheduled: this.#chance(0.5) };
      default:
        return undefined;
    }
  }

  /** a wrong value of any JSON type, sometimes deep or huge */
  #wrongValue(depth = 0): unknown {
    const k = this.#int(0, 11);
    switch (k) {
      case 0: return null;
      case 1: return this.#chance(0.5);
      case 2: return this.#pick([0, -1, 1.5, 2 ** 53 + 1, -(2 ** 63), 1e308, -0]);
      case 3: return this.#nastyString();
      case 4: return depth < 3 ? [this.#wrongValue(depth + 1), this.#wrongValue(depth + 1)] : [];
      case 5: return depth < 3 ? { [this.#nastyString().slice(0, 20)]: this.#wrongValue(depth + 1) } : {};
      case 6: return this.#pick(['Accepted', 'Soft', 'PowerUp', 'Rejected', 'soft', 'SOFT', 'Unknown', 'Hard ', 'NotSpecified\u0000']);
      case 7: return JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}') as unknown;
      default: return this.#nastyString();
    }
  }

  /** deep nesting, as JSON text (too deep to build as objects cheaply) */
  #deepText(): string {
    const depth = this.#pick([100, 1000, 10_000, 100_000]);
    return this.#chance(0.5) ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
  }

  #mutatePayload(op: string, p: unknown): { value: unknown; kind: string; deep?: boolean; huge?: boolean } {
    const base = p && typeof p === 'object' && !Array.isArray(p) ? { ...(p as Record<string, unknown>) } : p;
    const m = this.#int(0, 9);
    if (m === 0) return { value: this.#wrongValue(), kind: 'payload-wrong-type' };
    if (m === 1) return { value: undefined, kind: 'payload-missing' };
    if (base && typeof base === 'object' && !Array.isArray(base)) {
      const obj = base as Record<string, unknown>;
      const keys = Object.keys(obj);
      switch (m) {
        case 2: if (keys.length) delete obj[this.#pick(keys)]; return { value: obj, kind: 'field-missing' };
        case 3: if (keys.length) obj[this.#pick(keys)] = this.#wrongValue(); return { value: obj, kind: 'field-wrong-type' };
        case 4: obj[this.#pick(['extra', '__proto__', 'constructor', 'toString', 'hasOwnProperty', this.#str(8)])] = this.#wrongValue(); return { value: obj, kind: 'field-extra' };
        case 5: for (const k of ['retrieve_timestamp', 'install_timestamp', 'oldest_timestamp', 'latest_timestamp']) if (this.#chance(0.5) || k in obj) obj[k] = this.#timestamp(false); return { value: obj, kind: 'bad-timestamp' };
        case 6: obj.location = this.#url(false, ['http', 'https', 'ftp', 'ftps']); return { value: obj, kind: 'hostile-url' };
        case 7: if ('type' in obj || op === 'reset' || op === 'upload_logs') obj.type = this.#pick(['soft', 'Warm', '', 'DiagnosticsLog\u0000', 'x'.repeat(300), 'NotSpecified ']); return { value: obj, kind: 'unknown-enum' };
        case 8: obj.request_id = this.#pick([1.5, -2, 2 ** 63, '1', null, -(2 ** 31) - 1, 2 ** 31]); if (this.#chance(0.3)) obj.retries = this.#pick([0, -1, 2 ** 40, 1.5, '3']); if (this.#chance(0.3)) obj.retry_interval_s = this.#pick([-1, 2 ** 40, 1.5, '0', 10 ** 9]); return { value: obj, kind: 'numbers' };
        default: return { value: obj, kind: 'deep', deep: true };
      }
    }
    if (m <= 5) return { value: this.#pick(['soft', 'HARD', 'Warm', '', 'NotSpecified\n', 42, true, null]), kind: 'unknown-enum' };
    if (m <= 7) return { value: this.#timestamp(false), kind: 'bad-timestamp' };
    return { value: base, kind: 'deep', deep: true };
  }

  /** headers.replyTo that is not ours (expect none), or ours (expect a reply) */
  #replyTo(): { headers?: unknown; replyId?: string; valid: boolean; kind: string } {
    const id = this.#replyId();
    const own = `${this.#replyBase}${id}`;
    if (this.#chance(0.7)) return { headers: { replyTo: own }, replyId: id, valid: true, kind: 'replyTo-own' };
    const bad = this.#pick<[unknown, string]>([
      [undefined, 'no-headers'],
      [{}, 'no-replyTo'],
      [{ replyTo: null }, 'replyTo-null'],
      [{ replyTo: 42 }, 'replyTo-number'],
      [{ replyTo: [own] }, 'replyTo-array'],
      [{ replyTo: { topic: own } }, 'replyTo-object'],
      [{ replyTo: '' }, 'replyTo-empty'],
      [{ replyTo: 'everest_api/1/system/other_module/m2e/reply/' + id }, 'replyTo-other-module'],
      [{ replyTo: 'everest_api/1/system/system_api_2/m2e/reply/' + id }, 'replyTo-similar-module'],
      [{ replyTo: this.#replyBase + '#' }, 'replyTo-wildcard-#'],
      [{ replyTo: this.#replyBase + '+' }, 'replyTo-wildcard-+'],
      [{ replyTo: '#' }, 'replyTo-#'],
      [{ replyTo: this.#replyBase.replace('m2e/reply/', 'e2m/reset') }, 'replyTo-e2m'],
      [{ replyTo: this.#replyBase.replace('m2e/reply/', 'm2e/firmware_update_status') }, 'replyTo-status-topic'],
      [{ replyTo: this.#replyBase.replace('m2e/reply/', 'm2e/communication_check') }, 'replyTo-comm-check'],
      [{ replyTo: this.#replyBase }, 'replyTo-no-id'],
      [{ replyTo: this.#replyBase + '../../e2m/reset' }, 'replyTo-traversal'],
      [{ replyTo: this.#replyBase + id + '/deeper' }, 'replyTo-deeper'],
      [{ replyTo: this.#replyBase + 'x'.repeat(600) }, 'replyTo-long'],
      [{ replyTo: this.#replyBase + id + '\u0000' }, 'replyTo-nul'],
      [{ replyTo: this.#replyBase + 'ü' + id }, 'replyTo-unicode'],
      [{ replyTo: '$SYS/broker/x' }, 'replyTo-$SYS'],
      [{ replyTo: 'prefix/' + own }, 'replyTo-prefixed'],
      [{ replyTo: ' ' + own }, 'replyTo-space'],
      [[own], 'headers-array'],
      ['replyTo', 'headers-string'],
    ]);
    return { headers: bad[0], valid: false, kind: bad[1] };
  }

  #huge(): string {
    // 1 MiB to 1.5 MiB
    return 'A'.repeat(1024 * 1024 + this.#int(0, 512 * 1024));
  }

  #request(op: string): Omit<FuzzMessage, 'n' | 'name'> {
    const rt = this.#replyTo();
    const valid = this.#validPayload(op);
    let payload: unknown = valid;
    let kind = 'valid';
    let deep = false;
    let huge = this.#chance(this.#o.hugeRate);
    if (this.#chance(0.75)) {
      const m = this.#mutatePayload(op, valid);
      payload = m.value;
      kind = m.kind;
      deep = !!m.deep;
    }
    const env: Record<string, unknown> = {};
    if (rt.headers !== undefined) env.headers = rt.headers;
    if (payload !== undefined) env.payload = payload;
    if (huge) env.payload = { big: 'PLACEHOLDER_HUGE' };
    let text = JSON.stringify(env);
    if (huge) text = text.replace('PLACEHOLDER_HUGE', this.#huge());
    if (deep) {
      // inside the payload object when there is one (it reaches the plugin), else in the envelope
      const d = this.#deepText();
      if (text.includes('"payload":{}')) text = text.replace('"payload":{}', `"payload":{"deep":${d}}`);
      else if (text.includes('"payload":{')) text = text.replace('"payload":{', `"payload":{"deep":${d},`);
      else text = text.replace(/}$/, text === '{}' ? `"deep":${d}}` : `,"deep":${d}}`);
    }
    const label = `${rt.kind}/${huge ? 'huge' : kind}`;
    // JSON-level breakage: the replyTo may or may not survive
    if (this.#chance(0.08)) {
      const broken = this.#breakJson(text, rt.valid ? `${this.#replyBase}${rt.replyId}` : undefined);
      return { payload: Buffer.from(broken.text), replyId: rt.replyId, expect: rt.valid ? broken.expect : 'none', kind: `${label}/${broken.kind}` };
    }
    return { payload: Buffer.from(text), replyId: rt.replyId, expect: rt.valid ? 'reply' : 'none', kind: label };
  }

  #breakJson(text: string, replyTo: string | undefined): { text: string; expect: Expect; kind: string } {
    const k = this.#int(0, 5);
    const after = replyTo ? text.indexOf(replyTo) + replyTo.length + 1 : 0;
    switch (k) {
      case 0: // cut right after the replyTo string: it is intact
        return { text: text.slice(0, Math.max(after, 1)), expect: replyTo ? 'reply' : 'none', kind: 'truncated-after-replyTo' };
      case 1: { // truncated anywhere
        const cut = this.#int(0, text.length - 1);
        return { text: text.slice(0, cut), expect: replyTo ? (cut >= after ? 'reply' : 'maybe') : 'none', kind: 'truncated' };
      }
      case 2:
        return { text: `${text}garbage`, expect: replyTo ? 'reply' : 'none', kind: 'trailing-garbage' };
      case 3:
        return { text: `\ufeff${text}`, expect: replyTo ? 'reply' : 'none', kind: 'bom' };
      case 4:
        return { text: text.replace(/:/g, this.#chance(0.5) ? '=' : ';'), expect: 'maybe', kind: 'colons-replaced' };
      default:
        return { text: text.replace(/"payload"/, '"payload":'), expect: replyTo ? 'reply' : 'none', kind: 'syntax-error' };
    }
  }

  #raw(): { payload: Buffer; kind: string } {
    const k = this.#int(0, 7);
    switch (k) {
      case 0: return { payload: Buffer.alloc(0), kind: 'empty' };
      case 1: return { payload: Buffer.from(this.#pick(['null', 'true', '0', '"x"', '[]', '{}', '[{}]', '{"headers":null}', '{"payload":null}'])), kind: 'json-scalar' };
      case 2: { const b = Buffer.alloc(this.#int(1, 4096)); for (let i = 0; i < b.length; i++) b[i] = Math.floor(this.#r() * 256); return { payload: b, kind: 'random-bytes' }; }
      case 3: return { payload: Buffer.from(this.#deepText()), kind: 'deep-raw' };
      case 4: return { payload: Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d]), kind: 'invalid-utf8' };
      case 5: return { payload: Buffer.from(`{"headers":{"replyTo":"${this.#replyBase}a"},"headers":{"replyTo":"everest_api/1/system/other/m2e/reply/b"}}`), kind: 'duplicate-headers' };
      case 6: return { payload: Buffer.from('{"a":"' + '\\u0000'.repeat(5000) + '"}'), kind: 'escapes' };
      default: return { payload: Buffer.from(this.#str(this.#int(1, 200))), kind: 'text' };
    }
  }

  next(): FuzzMessage {
    const n = this.#n++;
    const roll = this.#r();
    if (roll < 0.62) {
      const name = this.#pick(REQUESTS);
      if (this.#chance(0.06)) {
        const raw = this.#raw();
        // duplicate-headers: the last "headers" wins in JSON.parse, pointing at another module
        return { n, name, payload: raw.payload, expect: 'none', kind: `raw/${raw.kind}` };
      }
      return { n, name, ...this.#request(name) };
    }
    if (roll < 0.72) {
      const name = 'reset';
      if (this.#chance(0.2)) return { n, name, ...this.#raw(), expect: 'none' };
      const valid = this.#validPayload('reset');
      const m = this.#chance(0.8) ? this.#mutatePayload('reset', valid) : { value: valid, kind: 'valid' };
      let text = m.value === undefined ? '' : JSON.stringify(m.value);
      if (m.deep) text = `{"type":"Soft","deep":${this.#deepText()}}`;
      if (this.#chance(this.#o.hugeRate)) text = `{"type":"Soft","x":"${this.#huge()}"}`;
      return { n, name, payload: Buffer.from(text), expect: 'none', kind: `reset/${m.kind}` };
    }
    if (roll < 0.78) {
      const name = 'allow_firmware_installation';
      const payload = this.#chance(0.5) ? Buffer.alloc(0) : this.#raw().payload;
      return { n, name, payload, expect: 'none', kind: 'allow' };
    }
    if (roll < 0.9) {
      return { n, name: 'heartbeat', payload: Buffer.from(this.#pick(HEARTBEATS)), expect: 'none', kind: 'heartbeat' };
    }
    const name = this.#pick(UNKNOWN_NAMES);
    // an unknown name with a perfectly valid envelope still gets no reply
    const replyId = this.#replyId();
    const env = { headers: { replyTo: `${this.#replyBase}${replyId}` }, payload: this.#wrongValue() };
    return { n, name, payload: Buffer.from(JSON.stringify(env)), replyId, expect: 'none', kind: 'unknown-name' };
  }
}
