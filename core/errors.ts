/** Errors with stable codes; messages name the offending value and, where useful, the fix. */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_UNREADABLE'
  | 'PLUGIN_UNKNOWN'
  | 'PLUGIN_LOAD_FAILED'
  | 'PLUGIN_INVALID'
  | 'PLUGIN_DUPLICATE'
  | 'OPERATION_CLAIMED_TWICE'
  | 'ADAPTER_MISSING'
  | 'ADAPTER_UNKNOWN'
  | 'ADAPTER_INVALID'
  | 'PLUGIN_START_FAILED';

export class SystemClientError extends Error {
  readonly code: ErrorCode;
  /** individual problems, e.g. every config validation error */
  readonly details: string[];
  constructor(code: ErrorCode, message: string, details: string[] = []) {
    super(details.length ? `${message}\n${details.map((d) => `  - ${d}`).join('\n')}` : message);
    this.name = 'SystemClientError';
    this.code = code;
    this.details = details;
  }
}
