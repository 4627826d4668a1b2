// @ts-check
/**
 * Installer adapter "vendor-tool": installs firmware with a vendor's own flashing tool.
 *
 * Bound in plugins.config.json, loaded by path (or package name):
 *   "installer": { "type": "vendor-tool", "module": "./vendor-installer/adapter.js", "tool": "/usr/sbin/vendor-flash" }
 *
 * The tool's command line (what the vendor tool is assumed to offer):
 *   <tool> check <image>     exit 0 and the image's version on stdout when the image is acceptable
 *   <tool> install <image>   prints "progress <n>" lines; a last line "reboot-required" when the
 *                            image becomes active after a reboot; exit 0 ok, 3 image rejected
 *   <tool> commit            after the reboot: exit 0 when the new image runs and is committed
 *
 * Plain ES module with JSDoc types: it loads in every build of the daemon (sources, dist, the
 * single-file board bundle) without a compile step, and `tsc --checkJs` checks it against the SDK.
 * The programs run through execa with argument arrays, never a shell, in the daemon's environment.
 */
import { execa } from 'execa';

/** @typedef {import('everest-system-client').AdapterModule<'installer'>} AdapterModule */
/** @typedef {import('everest-system-client').AdapterDeps} AdapterDeps */
/** @typedef {import('everest-system-client').InstallerAdapter} InstallerAdapter */
/** @typedef {import('everest-system-client').InstallOutcome} InstallOutcome */
/** @typedef {import('everest-system-client').ConfirmOutcome} ConfirmOutcome */
/** @typedef {import('everest-system-client').InstallProgress} InstallProgress */

const PROGRESS = /^progress (\d{1,3})$/;
const EXIT_REJECTED = 3;

/** @implements {InstallerAdapter} */
class VendorToolInstaller {
  type = 'vendor-tool';

  /**
   * @param {string} tool
   * @param {number} timeoutMs
   * @param {AdapterDeps} deps
   */
  constructor(tool, timeoutMs, deps) {
    this.tool = tool;
    this.timeoutMs = timeoutMs;
    this.deps = deps;
  }

  /**
   * @param {string[]} args
   * @param {AbortSignal} [signal]
   */
  run(args, signal) {
    return execa(this.tool, args, {
      env: /** @type {Record<string, string>} */ (this.deps.env),
      extendEnv: false,
      stdin: 'ignore',
      reject: false,
      timeout: this.timeoutMs,
      ...(signal ? { cancelSignal: signal } : {}),
    });
  }

  /**
   * @param {string} file
   * @param {AbortSignal} signal
   */
  async inspect(file, signal) {
    const r = await this.run(['check', file], signal);
    if (r.exitCode === 0) return { ok: true, version: String(r.stdout).trim() || undefined };
    return { ok: false, message: String(r.stderr).trim() || `${this.tool} check failed (${r.exitCode ?? r.signal})` };
  }

  /**
   * @param {string} file
   * @param {{ signal: AbortSignal, onProgress: (p: InstallProgress) => void }} options
   * @returns {Promise<InstallOutcome>}
   */
  async install(file, { signal, onProgress }) {
    this.deps.log.info({ tool: this.tool, file }, 'vendor-tool: installing');
    const child = this.run(['install', file], signal);
    let rebootRequired = false;
    for await (const line of child) {
      const text = String(line).trim();
      const m = PROGRESS.exec(text);
      if (m) onProgress({ percent: Math.min(100, Number(m[1])) });
      if (text === 'reboot-required') rebootRequired = true;
    }
    const r = await child;
    const message = String(r.stderr).trim().split('\n').at(-1) || undefined;
    if (r.isCanceled) return { result: 'failed', message: 'installation aborted' };
    if (r.exitCode === EXIT_REJECTED) return { result: 'verification-failed', message };
    if (r.exitCode !== 0) return { result: 'failed', message: message ?? `${this.tool} install exited with ${r.exitCode ?? r.signal}` };
    return rebootRequired ? { result: 'reboot-required', confirmData: { file } } : { result: 'installed' };
  }

  /**
   * @param {Record<string, unknown>} _confirmData
   * @returns {Promise<ConfirmOutcome>}
   */
  async confirm(_confirmData) {
    const r = await this.run(['commit']);
    return r.exitCode === 0 ? { result: 'installed' } : { result: 'failed', message: String(r.stderr).trim() || `${this.tool} commit failed` };
  }
}

/** @type {AdapterModule} */
const adapter = {
  slot: 'installer',
  type: 'vendor-tool',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['tool'],
    properties: {
      tool: { type: 'string', minLength: 1, description: 'the vendor flashing tool: absolute path, or a name on the daemon\'s PATH' },
      timeoutS: { type: 'number', exclusiveMinimum: 0, default: 1800, description: 'end the tool after this long' },
    },
  },
  create(options, deps) {
    return new VendorToolInstaller(String(options.tool), Number(options.timeoutS ?? 1800) * 1000, deps);
  },
};
export default adapter;
