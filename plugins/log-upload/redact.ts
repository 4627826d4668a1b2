/**
 * Redaction of secrets in collected log text, streamed line by line so that a secret split
 * across two chunks is still found. Lines longer than MAX_LINE are cut into pieces (a secret
 * straddling such a cut in a pathological line could survive; normal log lines are far shorter).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

export const REDACTED = '[REDACTED]';
const MAX_LINE = 1024 * 1024;

/** A rule from the plugin options: a literal string, or `{ regex, flags? }`. */
export type RedactRule = string | { regex: string; flags?: string };

export interface Redactor {
  /** number of rules (the rules themselves are never written anywhere) */
  readonly rules: number;
  /** redact a block of complete lines */
  apply(text: string): string;
  /** a fresh streaming transform */
  stream(): Transform;
}

/** Build a redactor; throws with a clear message for an invalid regex. Undefined for no rules. */
export function makeRedactor(rules: readonly RedactRule[] | undefined): Redactor | undefined {
  const literals: string[] = [];
  const regexes: RegExp[] = [];
  for (const [i, rule] of (rules ?? []).entries()) {
    if (typeof rule === 'string') {
      if (rule.length > 0) literals.push(rule);
      continue;
    }
    const flags = new Set([...(rule.flags ?? '')].filter((f) => 'imsu'.includes(f)));
    flags.add('g');
    let re: RegExp;
    try {
      re = new RegExp(rule.regex, [...flags].join(''));
    } catch (err) {
      throw new Error(`redact[${i}] is not a valid regular expression: ${(err as Error).message}`);
    }
    if (re.test('')) throw new Error(`redact[${i}] matches the empty string`);
    regexes.push(re);
  }
  if (literals.length === 0 && regexes.length === 0) return undefined;
  // longest first, so that a literal containing another is replaced whole
  literals.sort((a, b) => b.length - a.length);

  const redactLine = (line: string): string => {
    let out = line;
    for (const lit of literals) if (out.includes(lit)) out = out.split(lit).join(REDACTED);
    for (const re of regexes) {
      re.lastIndex = 0;
      out = out.replace(re, REDACTED);
    }
    return out;
  };
  const apply = (text: string): string => {
    if (regexes.length === 0) return redactLine(text);
    // per line: a regex never spans lines, whatever the chunking
    return text.split('\n').map(redactLine).join('\n');
  };
  return {
    rules: literals.length + regexes.length,
    apply,
    stream: () => new RedactStream(apply),
  };
}

class RedactStream extends Transform {
  private readonly decoder = new StringDecoder('utf8');
  private rest = '';
  constructor(private readonly apply: (text: string) => string) {
    super();
  }
  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    const text = this.rest + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    const nl = text.lastIndexOf('\n');
    if (nl < 0) {
      if (text.length > MAX_LINE) {
        this.rest = '';
        cb(null, Buffer.from(this.apply(text)));
      } else {
        this.rest = text;
        cb();
      }
      return;
    }
    this.rest = text.slice(nl + 1);
    cb(null, Buffer.from(this.apply(text.slice(0, nl + 1))));
  }
  override _flush(cb: TransformCallback): void {
    const text = this.rest + this.decoder.end();
    this.rest = '';
    cb(null, text.length ? Buffer.from(this.apply(text)) : undefined);
  }
}
