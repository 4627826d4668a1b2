/**
 * Validation of an `update_firmware` payload. Everything here is synchronous and cheap: the
 * reply has to go out at once.
 */
import type { FirmwareUpdateRequest } from '../../core/api.js';
import { checkUrl, redactUrl } from '../../core/net/url.js';

export const MAX_CERTIFICATE_LENGTH = 16_000;
export const MAX_SIGNATURE_LENGTH = 4_000;

/** A request that passed the checks, normalised. */
export interface ValidRequest {
  requestId: number;
  location: string;
  url: URL;
  /** location safe to log: no user info, no query, no fragment */
  redacted: string;
  attempts: number;
  retryIntervalS: number;
  retrieveAt?: number;
  installAt?: number;
  signed?: { signature: string; certificate: string };
}

export type RequestCheck = { ok: true; request: ValidRequest } | { ok: false; reason: string; redacted?: string };

/**
 * Characters RFC 3986 allows in a URI (unreserved, reserved, '%'). Anything else (backquote, '|',
 * '<', '>', '{', '}', '\\', '"', '^', spaces, non-ASCII) is refused on top of the shared URL policy:
 * a firmware location from a CSMS has no business containing them.
 */
const URI_CHARS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]*$/;

/** A DNS name (IDNs arrive as punycode from the URL parser) or a bracketed IPv6 address. */
const HOST = /^(?:\[[0-9a-f:.]+\]|[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*\.?)$/i;

function isTimestamp(v: unknown): v is string {
  return typeof v === 'string' && v.length <= 64 && /^\d{4}-\d{2}-\d{2}T/.test(v) && Number.isFinite(Date.parse(v));
}

/** Check the payload against the contract and the plugin's URL policy. */
export function checkRequest(
  payload: unknown,
  policy: { allowedSchemes: readonly string[]; defaultAttempts: number; defaultRetryIntervalS: number },
): RequestCheck {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    return { ok: false, reason: 'payload is not an object' };
  }
  const p = payload as Partial<Record<keyof FirmwareUpdateRequest, unknown>>;
  const location = checkUrl(p.location, policy.allowedSchemes);
  const redacted = location.redacted;
  const fail = (reason: string): RequestCheck => ({ ok: false, reason, redacted });

  if (typeof p.request_id !== 'number' || !Number.isSafeInteger(p.request_id)) return fail('request_id is not an integer');
  if (!location.ok) return fail(location.reason);
  if (!URI_CHARS.test(p.location as string)) return fail('location contains characters a URL may not contain');
  const url = location.url;
  if (!HOST.test(url.hostname)) return fail('location host is not a DNS name or an IP address');

  let attempts = policy.defaultAttempts;
  if (p.retries !== undefined) {
    if (typeof p.retries !== 'number' || !Number.isSafeInteger(p.retries) || p.retries < 0) return fail('retries is not a non-negative integer');
    // EVerest sends the total number of attempts (CSMS retries + 1); 0 still means one attempt
    attempts = Math.max(1, p.retries);
  }
  let retryIntervalS = policy.defaultRetryIntervalS;
  if (p.retry_interval_s !== undefined) {
    if (typeof p.retry_interval_s !== 'number' || !Number.isSafeInteger(p.retry_interval_s) || p.retry_interval_s < 0) {
      return fail('retry_interval_s is not a non-negative integer');
    }
    retryIntervalS = p.retry_interval_s;
  }
  let retrieveAt: number | undefined;
  if (p.retrieve_timestamp !== undefined) {
    if (!isTimestamp(p.retrieve_timestamp)) return fail('retrieve_timestamp is not an RFC 3339 date-time');
    retrieveAt = Date.parse(p.retrieve_timestamp);
  }
  let installAt: number | undefined;
  if (p.install_timestamp !== undefined) {
    if (!isTimestamp(p.install_timestamp)) return fail('install_timestamp is not an RFC 3339 date-time');
    installAt = Date.parse(p.install_timestamp);
  }

  const hasSig = p.signature !== undefined && p.signature !== '';
  const hasCert = p.signing_certificate !== undefined && p.signing_certificate !== '';
  let signed: ValidRequest['signed'];
  if (hasSig || hasCert) {
    if (!hasSig || !hasCert) return fail('signature and signing_certificate must be given together');
    if (typeof p.signature !== 'string' || p.signature.length > MAX_SIGNATURE_LENGTH) return fail('signature is not a string of acceptable length');
    if (typeof p.signing_certificate !== 'string' || p.signing_certificate.length > MAX_CERTIFICATE_LENGTH) {
      return fail('signing_certificate is not a string of acceptable length');
    }
    signed = { signature: p.signature, certificate: p.signing_certificate };
  }

  return {
    ok: true,
    request: {
      requestId: p.request_id,
      location: p.location as string,
      url,
      redacted,
      attempts,
      retryIntervalS,
      retrieveAt,
      installAt,
      signed,
    },
  };
}

/** The location in a form safe to log; never throws. */
export function redactLocation(location: unknown): string {
  return typeof location === 'string' ? redactUrl(location) : `<${typeof location}>`;
}
