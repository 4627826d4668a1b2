/**
 * `everest-system probe`: EVerest's side of system_API for vendors, operators and plugin authors.
 * See core/probe/README.md.
 */
export { createProbeCommand, firmwareSign, registerProbe, runProbe } from './command.js';
export { EXIT, ProbeError, type ProbeIO } from './io.js';
export { CommCheckMonitor, FAULT_TYPE, INITIAL_SUB_TYPE, LOST_SUB_TYPE } from './commcheck.js';
export { signImage } from './sign.js';
export { allowInstallation, bootReason, isResetAllowed, reset, setTime, updateFirmware, uploadLogs } from './operations.js';
export { watch } from './watch.js';
