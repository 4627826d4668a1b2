/**
 * Which message of the AsyncAPI file (spec/system_API.yaml) each inbound operation, reply and
 * status variable is validated against.
 */
import type { Operation, StatusTopic } from './api.js';

export const INBOUND_MESSAGE: Record<Operation, string> = {
  update_firmware: 'receive_request_update_firmware',
  upload_logs: 'receive_request_upload_logs',
  is_reset_allowed: 'receive_request_is_reset_allowed',
  set_system_time: 'receive_request_set_system_time',
  get_boot_reason: 'receive_request_get_boot_reason',
  allow_firmware_installation: 'receive_allow_firmware_installation',
  reset: 'receive_reset',
};

export const REPLY_MESSAGE: Record<string, string> = {
  update_firmware: 'send_reply_update_firmware',
  upload_logs: 'send_reply_upload_logs',
  is_reset_allowed: 'send_reply_is_reset_allowed',
  set_system_time: 'send_reply_set_system_time',
  get_boot_reason: 'send_reply_get_boot_reason',
};

export const STATUS_MESSAGE: Record<StatusTopic | 'communication_check', string> = {
  firmware_update_status: 'send_firmware_update_status',
  log_status: 'send_log_status',
  communication_check: 'send_communication_check',
};

/** Every message the daemon validates. */
export const USED_MESSAGES: string[] = [...new Set([...Object.values(INBOUND_MESSAGE), ...Object.values(REPLY_MESSAGE), ...Object.values(STATUS_MESSAGE)])];
