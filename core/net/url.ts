/**
 * URL policy for locations received over the API (firmware and log locations).
 *
 * Nothing in this project hands a URL to a shell, so shell metacharacters are harmless;
 * they are only reported (redacted) so an operator can see odd input.
 */
import type { CheckedUrl } from './types.js';

export const MAX_URL_LENGTH = 2048;

/** query parameter names whose values are masked by redactUrl */
const SECRET_PARAM = /token|sig|key|pass|secret|auth|credential|session|cookie/i;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const WHITESPACE = /[\s\u200b\u2028\u2029\ufeff]/u;
/** '&' counts only before the query, where it is not a parameter separator */
const SHELL_META = /[;|$`<>(){}\\!*'"]/;

/** Minimal logger shape (the plugin Logger fits). */
export interface UrlLog {
  warn(obj: unknown, msg?: string): void;
}

/**
 * Parse and check `location`. `allowedSchemes` are names like 'https' or 'ftp' (with or without ':').
 * Rejects non-strings, over-long input, control characters and whitespace, unparseable URLs, schemes
 * not in the list, and URLs without a host. The result's `redacted` is always safe to log.
 */
export function checkUrl(location: unknown, allowedSchemes: readonly string[], log?: UrlLog): CheckedUrl {
  if (typeof location !== 'string') {
    return { ok: false, reason: `location is not a string (${location === null ? 'null' : typeof location})`, redacted: '' };
  }
  const redacted = redactUrl(location);
  const fail = (reason: string): CheckedUrl => ({ ok: false, reason, redacted });
  if (location.length === 0) return fail('location is empty');
  if (location.length > MAX_URL_LENGTH) return fail(`location is longer than ${MAX_URL_LENGTH} characters (${location.length})`);
  if (CONTROL.test(location)) return fail('location contains control characters');
  if (WHITESPACE.test(location)) return fail('location contains whitespace');
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    return fail('location is not a valid absolute URL');
  }
  const scheme = url.protocol.replace(/:$/, '').toLowerCase();
  const allowed = allowedSchemes.map((s) => s.replace(/:$/, '').toLowerCase());
  if (!allowed.includes(scheme)) {
    return fail(`scheme "${scheme}" is not supported (allowed: ${allowed.join(', ')})`);
  }
  if (url.hostname === '') return fail('location has no host');
  const safe = redactUrl(url);
  if (log && (SHELL_META.test(location) || location.split('?')[0]!.includes('&'))) {
    log.warn({ location: safe }, 'location contains shell metacharacters (harmless: no shell is used)');
  }
  return { ok: true, url, redacted: safe };
}

/**
 * A form of `u` that is safe to log: user info removed, values of query parameters named like
 * token/sig/key/password/secret/auth masked, fragment dropped. Works on unparseable strings too.
 */
export function redactUrl(u: string | URL): string {
  let url: URL | undefined;
  if (u instanceof URL) url = u;
  else {
    try {
      url = new URL(u);
    } catch {
      url = undefined;
    }
  }
  if (!url) return redactRaw(String(u));
  // opaque URLs (data:, javascript:, mailto: ...): do not echo the payload
  if (url.host === '' && !['http:', 'https:', 'ftp:', 'ftps:', 'file:'].includes(url.protocol)) return `${url.protocol}…`;
  let out = `${url.protocol}//${url.host}${url.pathname}`;
  if (url.search) {
    const parts = url.search.slice(1).split('&').map((kv) => {
      const eq = kv.indexOf('=');
      if (eq < 0) return kv;
      const k = kv.slice(0, eq);
      let name = k;
      try {
        name = decodeURIComponent(k);
      } catch {
        /* keep raw */
      }
      return SECRET_PARAM.test(name) ? `${k}=***` : kv;
    });
    out += `?${parts.join('&')}`;
  }
  return out;
}

/** Best effort for strings the URL parser refuses. */
function redactRaw(s: string): string {
  let out = s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  if (out.length > 256) out = `${out.slice(0, 256)}…`;
  // user info: anything between '//' and the last '@' before the path
  out = out.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1');
  out = out.replace(/([?&][^=&#]*(?:token|sig|key|pass|secret|auth|credential|session|cookie)[^=&#]*=)[^&#]*/gi, '$1***');
  out = out.replace(/#.*$/, '');
  return out;
}

/** Decoded user name and password from the URL's user info (undefined when there is no user name). */
export function credentialsFromUrl(url: URL): { user: string; password: string } | undefined {
  if (!url.username) return undefined;
  return { user: decode(url.username), password: decode(url.password) };
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
