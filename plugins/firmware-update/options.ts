/**
 * Options of the firmware-update plugin: JSON Schema (with defaults) and the typed, normalised view.
 */

export const DEFAULT_SCHEMES = ['http', 'https', 'ftp', 'ftps'] as const;

export const optionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    retries: {
      type: 'integer', minimum: 1, default: 3,
      description: 'Total download attempts when the request carries no `retries`.',
    },
    retryIntervalS: {
      type: 'integer', minimum: 0, default: 60,
      description: 'Seconds between download attempts when the request carries no `retry_interval_s`.',
    },
    allowedSchemes: {
      type: 'array', items: { enum: [...DEFAULT_SCHEMES] }, uniqueItems: true, default: [...DEFAULT_SCHEMES],
      description: 'URL schemes a `location` may use; anything else is answered Rejected.',
    },
    requireSignature: {
      type: 'boolean', default: false,
      description: 'Reject requests that carry no `signature` and `signing_certificate`.',
    },
    trustAnchors: {
      type: 'array', items: { type: 'string', minLength: 1 }, default: [],
      description: 'PEM files of CA certificates; when set, the signing certificate must chain to one of them.',
    },
    installPermission: {
      enum: ['wait', 'proceed'], default: 'wait',
      description: '"wait": install only after allow_firmware_installation; "proceed": install without it.',
    },
    permissionTimeoutS: {
      type: 'integer', minimum: 1,
      description:
        'Give up (InstallationFailed) when allow_firmware_installation has not arrived this many seconds after the ' +
        'image was ready (or after install_timestamp). Unset: wait indefinitely.',
    },
    minFreeBytes: {
      type: 'integer', minimum: 0, default: 16 * 1024 * 1024,
      description: 'Free bytes the state directory needs when a request arrives; less is answered Rejected.',
    },
    maxImageBytes: {
      type: 'integer', minimum: 1,
      description: 'Largest image accepted for download (DownloadFailed beyond it).',
    },
    tls: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        ca: { type: 'array', items: { type: 'string', minLength: 1 }, default: [], description: 'extra CA PEM files for https/ftps' },
        rejectUnauthorized: { type: 'boolean', default: true },
      },
    },
  },
} as const;

export interface FirmwareUpdateOptions {
  retries: number;
  retryIntervalS: number;
  allowedSchemes: string[];
  requireSignature: boolean;
  trustAnchors: string[];
  installPermission: 'wait' | 'proceed';
  permissionTimeoutS?: number;
  minFreeBytes: number;
  maxImageBytes?: number;
  tls: { ca: string[]; rejectUnauthorized: boolean };
}

/** Typed view of the (already schema-validated) options, with every default filled in. */
export function normaliseOptions(raw: Readonly<Record<string, unknown>>): FirmwareUpdateOptions {
  const tls = (raw.tls ?? {}) as { ca?: string[]; rejectUnauthorized?: boolean };
  return {
    retries: (raw.retries as number | undefined) ?? 3,
    retryIntervalS: (raw.retryIntervalS as number | undefined) ?? 60,
    allowedSchemes: [...((raw.allowedSchemes as string[] | undefined) ?? DEFAULT_SCHEMES)],
    requireSignature: (raw.requireSignature as boolean | undefined) ?? false,
    trustAnchors: [...((raw.trustAnchors as string[] | undefined) ?? [])],
    installPermission: (raw.installPermission as 'wait' | 'proceed' | undefined) ?? 'wait',
    permissionTimeoutS: raw.permissionTimeoutS as number | undefined,
    minFreeBytes: (raw.minFreeBytes as number | undefined) ?? 16 * 1024 * 1024,
    maxImageBytes: raw.maxImageBytes as number | undefined,
    tls: { ca: [...(tls.ca ?? [])], rejectUnauthorized: tls.rejectUnauthorized ?? true },
  };
}
