/**
 * firmware-update: answers `update_firmware` and `allow_firmware_installation`, and publishes
 * `firmware_update_status` in the sequences OCPP expects (1.6 plain with request_id -1, 1.6
 * signed, 2.0.1 L01/L02).
 *
 * - Replies at once: Accepted, AcceptedCanceled (a download, scheduled update or update waiting
 *   for permission was cancelled for the new one), Rejected (invalid request or location, scheme
 *   not allowed, unsigned while `requireSignature`, an installation that cannot be cancelled, too
 *   little free disk space), InvalidCertificate (signing certificate unparsable, outside its
 *   validity, or not chaining to a configured trust anchor).
 * - Downloads with resume (core/net/download.ts) into the plugin's state dir, verifies the
 *   signature (node:crypto), lets the installer inspect the image, waits for install_timestamp and
 *   allow_firmware_installation, installs through the installer adapter, and reboots through the
 *   power adapter when the installer asks for it. After the reboot the installer confirms the new
 *   firmware and `Installed` is reported with the original request_id.
 * - Every phase is persisted before it is acted on (see updater.ts), so a restart or a power loss
 *   resumes the download, keeps schedules and permission, and never installs twice.
 */
import * as fsp from 'node:fs/promises';
import { inject, injectable } from 'tsyringe';
import {
  API_VERSION,
  TOKENS,
  type Handlers,
  type InstallerAdapter,
  type Plugin,
  type PluginContext,
  type PowerAdapter,
} from '../../core/api.js';
import { download } from '../../core/net/download.js';
import { normaliseOptions, optionsSchema } from './options.js';
import { loadTrustAnchors } from './signature.js';
import { FirmwareUpdater } from './updater.js';

async function freeBytes(dir: string): Promise<number> {
  const s = await fsp.statfs(dir);
  return s.bavail * s.bsize;
}

async function readFiles(paths: readonly string[], what: string): Promise<{ path: string; text: string }[]> {
  return Promise.all(
    paths.map(async (p) => {
      try {
        return { path: p, text: await fsp.readFile(p, 'utf8') };
      } catch (err) {
        throw new Error(`firmware-update: cannot read ${what} ${p}: ${(err as Error).message}`);
      }
    }),
  );
}

@injectable()
export default class FirmwareUpdatePlugin implements Plugin {
  static readonly pluginName = 'firmware-update';
  static readonly apiVersion = API_VERSION;
  static readonly operations = ['update_firmware', 'allow_firmware_installation'] as const;
  static readonly adapters = ['installer', 'power'] as const;
  static readonly optionsSchema = optionsSchema;

  private updater?: FirmwareUpdater;
  private unregisterVeto?: () => void;

  constructor(
    @inject(TOKENS.Context) private readonly ctx: PluginContext,
    @inject(TOKENS.Installer) private readonly installer: InstallerAdapter,
    @inject(TOKENS.Power) private readonly power: PowerAdapter,
  ) {}

  handlers(): Handlers {
    return {
      update_firmware: (payload, meta) => {
        if (!this.updater) {
          this.ctx.log.warn('update_firmware before the plugin started; rejected');
          return 'Rejected';
        }
        return this.updater.handleRequest(payload, meta);
      },
      allow_firmware_installation: () => {
        void this.updater?.handlePermission().catch((err: unknown) =>
          this.ctx.log.error({ err: String(err) }, 'allow_firmware_installation failed'),
        );
      },
    };
  }

  async start(): Promise<void> {
    const { ctx } = this;
    const options = normaliseOptions(ctx.options);
    const trustAnchors = loadTrustAnchors(await readFiles(options.trustAnchors, 'trust anchor'));
    const tlsCa = (await readFiles(options.tls.ca, 'TLS CA file')).map((f) => f.text);
    const updater = new FirmwareUpdater({
      log: ctx.log,
      options,
      state: ctx.state,
      publish: (status, requestId, final) =>
        ctx.publish('firmware_update_status', { firmware_update_status: status, request_id: requestId }, { final }),
      installer: this.installer,
      power: this.power,
      bootReason: ctx.bootReason,
      download,
      freeBytes,
      trustAnchors,
      tlsCa,
    });
    this.unregisterVeto = ctx.resetVetoes.register(ctx.name, () => updater.resetVeto());
    this.updater = updater;
    await updater.start();
  }

  async stop(): Promise<void> {
    this.unregisterVeto?.();
    await this.updater?.stop();
  }
}
