/**
 * `everest-system probe ...`: plays EVerest's side of system_API against a running daemon over a
 * real broker. `registerProbe(program)` adds it to the daemon's CLI; `runProbe(argv, io)` runs it
 * in-process and resolves with the exit code (tests, scripts embedding it).
 */
import { Argument, Command, CommanderError, Option } from 'commander';
import type { ResetType } from '../api.js';
import { DEFAULT_URL } from './broker.js';
import { EXIT, ProbeError, Reporter, type ProbeIO } from './io.js';
import { allowInstallation, bootReason, isResetAllowed, reset, setTime, updateFirmware, uploadLogs, type CommonOptions } from './operations.js';
import { signImage } from './sign.js';
import { intArg, numberArg, timeArg, u64Arg } from './values.js';
import { watch } from './watch.js';

const RESET_TYPES = ['Soft', 'Hard', 'NotSpecified'];

const HELP_FOOTER = `
Exit codes: 0 success, 1 the daemon said no or the operation ended in a failure state,
2 bad input or broker unreachable, 3 no reply in time, 4 no end state in time, 130 Ctrl-C.
With --json every line is one JSON object with "event" (connected, heartbeat, request, reply,
command, status, comm_check, fault, warning, message, summary, end) and "t"; the last line is
{"event":"end","ok":...,"exit_code":...}.`;

function common(cmd: Command, heartbeatDefault = 1000): Command {
  return cmd
    .option('--url <url>', `MQTT broker (default ${DEFAULT_URL})`)
    .option('--username <name>', 'broker user name')
    .addOption(new Option('--password <password>', 'broker password (better: the environment variable, not visible in ps)').env('EVEREST_SYSTEM_MQTT_PASSWORD'))
    .option('--ca <file>', 'CA certificate (PEM) to trust for mqtts://')
    .option('--tls-cert <file>', 'client certificate (PEM) for mutual TLS')
    .option('--tls-key <file>', 'client key (PEM) for mutual TLS')
    .option('--insecure', 'do not verify the broker certificate')
    .option('-c, --config <file>', "take url, credentials, TLS, moduleId and prefix from the daemon's config file")
    .option('--module-id <id>', 'id of the system_API module in the EVerest config (default system_api)')
    .option('--prefix <prefix>', "EVerest's mqtt_external_prefix (default none)")
    .option('--connect-timeout-s <s>', 'give up reaching the broker after this long (exit 2)', numberArg(0.1), 5)
    .option('--json', 'one JSON object per line, for scripts')
    .addOption(
      new Option('--heartbeat-ms <ms>', "send e2m/heartbeat like EVerest's cfg_heartbeat_interval_ms (0: none; use 0 beside a real EVerest)")
        .argParser(numberArg(0, true))
        .default(heartbeatDefault),
    )
    .option('--heartbeat-from <n>', 'first heartbeat counter (default random; 0 looks like a freshly started EVerest)', u64Arg)
    .option('--comm-timeout-s <s>', "EVerest's cfg_communication_check_to_s: fault after this long without communication_check (0: no check)", numberArg(0), 5)
    .addHelpText('after', HELP_FOOTER);
}

export interface ProbeCommandHooks {
  io(): ProbeIO;
  exit(code: number): void;
}

/** The `probe` command with its subcommands; `hooks.exit` receives every exit code. */
export function createProbeCommand(hooks: ProbeCommandHooks): Command {
  const probe = new Command('probe')
    .description("play EVerest's side of system_API against a running daemon over a real broker (for vendors and integrators)")
    .showHelpAfterError('(add --help for usage)');
  const run = (fn: (io: ProbeIO) => Promise<number>) => async () => hooks.exit(await fn(hooks.io()));

  common(probe.command('update-firmware'))
    .description('send update_firmware, follow firmware_update_status, send allow_firmware_installation like libocpp, end on an end state')
    .requiredOption('--location <url>', 'where the daemon downloads the image')
    .option('--request-id <id>', 'request_id (default: a random positive integer)', intArg)
    .option('--ocpp16', 'send request_id -1 as the OCPP 1.6 module does for UpdateFirmware')
    .option('--retries <n>', 'total download attempts (OCPP retries + 1, as EVerest passes it)', numberArg(1, true))
    .option('--retry-interval <s>', 'retry_interval_s', numberArg(0, true))
    .option('--retrieve-at <time>', 'retrieve_timestamp: RFC 3339, "now" or "+30s"/"+5m"', timeArg)
    .option('--install-at <time>', 'install_timestamp: RFC 3339, "now" or "+30s"/"+5m"', timeArg)
    .option('--signed-by <cert>', 'signing certificate (PEM) sent as signing_certificate')
    .option('--key <key>', 'private key (PEM, RSA or EC) to sign --image with (base64 SHA-256 signature)')
    .option('--image <file>', 'a local copy of the bytes --location serves, to compute the signature')
    .option('--signature <base64>', 'send this signature as given instead of computing one (e.g. to test InvalidSignature)')
    .option('--no-allow', 'do not send allow_firmware_installation (libocpp sends it after SignatureVerified / Downloaded)')
    .option('--until-rebooting', 'stop with success at InstallRebooting (the daemon reboots the board; Installed follows only after the restart)')
    .option('--timeout-s <s>', 'give up waiting for an end state after this long (exit 4)', numberArg(0.1), 600)
    .option('--reply-timeout-s <s>', 'give up waiting for the reply after this long (exit 3)', numberArg(0.1), 10)
    .action(function (this: Command) {
      return run((io) => updateFirmware(this.opts(), io))();
    });

  common(probe.command('allow-installation'))
    .description('send allow_firmware_installation (zero-byte payload), as EVerest does once every connector is unavailable')
    .action(function (this: Command) {
      return run((io) => allowInstallation(this.opts<CommonOptions>(), io))();
    });

  common(probe.command('upload-logs'))
    .description('send upload_logs, print the file name, follow log_status to Uploaded or a failure')
    .requiredOption('--location <url>', 'where the daemon uploads the log archive')
    .option('--request-id <id>', 'request_id (absent: omitted, like OCPP 1.6 GetDiagnostics; statuses then carry -1)', intArg)
    .option('--since <time>', 'oldest_timestamp: RFC 3339, "now" or relative like "-2h"', timeArg)
    .option('--until <time>', 'latest_timestamp: RFC 3339, "now" or relative like "-5m"', timeArg)
    .option('--type <type>', 'log type (DiagnosticsLog, SecurityLog, ...)', 'DiagnosticsLog')
    .option('--retries <n>', 'total upload attempts', numberArg(1, true))
    .option('--retry-interval <s>', 'retry_interval_s', numberArg(0, true))
    .option('--timeout-s <s>', 'give up waiting for an end state after this long (exit 4)', numberArg(0.1), 600)
    .option('--reply-timeout-s <s>', 'give up waiting for the reply after this long (exit 3)', numberArg(0.1), 10)
    .action(function (this: Command) {
      return run((io) => uploadLogs(this.opts(), io))();
    });

  common(probe.command('is-reset-allowed'))
    .description('ask is_reset_allowed; exit 0 when allowed, 1 when not')
    .addArgument(new Argument('<type>', 'reset type').choices(RESET_TYPES))
    .option('--timeout-s <s>', 'give up waiting for the reply after this long (exit 3)', numberArg(0.1), 10)
    .action(function (this: Command, type: ResetType) {
      return run((io) => isResetAllowed(type, this.opts(), io))();
    });

  common(probe.command('reset'))
    .description('send reset {type, scheduled} (fire and forget: exit 0 once published)')
    .addArgument(new Argument('<type>', 'reset type').choices(RESET_TYPES))
    .option('--scheduled', 'scheduled: true, as OCPP 2.0.1 sends for OnIdle resets')
    .action(function (this: Command, type: ResetType) {
      const o = this.opts<CommonOptions & { scheduled?: boolean }>();
      return run((io) => reset(type, o.scheduled === true, o, io))();
    });

  common(probe.command('set-time'))
    .description('send set_system_time (default: the current time); exit 0 when the daemon answers true')
    .addArgument(new Argument('[time]', 'RFC 3339 date-time, "now" or relative like "+1h"').argParser(timeArg))
    .option('--timeout-s <s>', 'give up waiting for the reply after this long (exit 3)', numberArg(0.1), 10)
    .action(function (this: Command, time: string | undefined) {
      return run((io) => setTime(time, this.opts(), io))();
    });

  common(probe.command('boot-reason'))
    .description('ask get_boot_reason, as EVerest does once at start-up for the BootNotification')
    .option('--timeout-s <s>', 'give up waiting for the reply after this long (exit 3)', numberArg(0.1), 10)
    .action(function (this: Command) {
      return run((io) => bootReason(this.opts(), io))();
    });

  common(probe.command('watch'), 0)
    .description('live timeline of every message on the module topics; heartbeat and communication_check summarised (sends no heartbeat unless --heartbeat-ms)')
    .option('--duration-s <s>', 'stop after this long (default: until Ctrl-C)', numberArg(0.1))
    .option('--summary-s <s>', 'heartbeat/communication_check summary line every this long when not on a terminal', numberArg(0.1), 10)
    .action(function (this: Command) {
      return run((io) => watch(this.opts(), io))();
    });

  probe
    .command('firmware-sign')
    .description('sign an image as a CSMS expects it: base64 SHA-256 signature (RSA PKCS#1 v1.5 or ECDSA by key type)')
    .requiredOption('--image <file>', 'the firmware image')
    .requiredOption('--key <key>', 'private key (PEM, RSA or EC)')
    .option('--cert <cert>', 'signing certificate (PEM): checked against the key; printed with --json')
    .option('--json', 'print {"event":"signature","signature":...,"signing_certificate":...}')
    .action(function (this: Command) {
      const o = this.opts<{ image: string; key: string; cert?: string; json?: boolean }>();
      return run((io) => firmwareSign(o, io))();
    });

  return probe;
}

export async function firmwareSign(o: { image: string; key: string; cert?: string; json?: boolean }, io: ProbeIO): Promise<number> {
  const rep = new Reporter(io, o.json === true);
  try {
    const signed = await signImage(o.image, o.key, o.cert);
    if (rep.json) {
      rep.plain(JSON.stringify({ event: 'signature', signature: signed.signature, ...(signed.signingCertificate ? { signing_certificate: signed.signingCertificate } : {}), key_type: signed.keyType }));
    } else {
      rep.plain(signed.signature);
    }
    return EXIT.ok;
  } catch (err) {
    if (!(err instanceof ProbeError)) throw err;
    if (rep.json) rep.plain(JSON.stringify({ event: 'end', ok: false, exit_code: err.exitCode, message: err.message }));
    rep.error(err.message);
    return err.exitCode;
  }
}

/** Runs `probe <argv...>` in-process; resolves with the exit code (usage errors: 2). */
export async function runProbe(argv: string[], io: ProbeIO): Promise<number> {
  let code: number = EXIT.ok;
  const probe = createProbeCommand({ io: () => io, exit: (c) => (code = c) });
  const output = { writeOut: (s: string) => void io.stdout.write(s), writeErr: (s: string) => void io.stderr.write(s) };
  const configure = (cmd: Command) => {
    cmd.exitOverride().configureOutput(output);
    cmd.commands.forEach(configure);
  };
  configure(probe);
  try {
    await probe.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    throw err;
  }
  return code;
}

/** Adds `probe` to the daemon's command line. */
export function registerProbe(program: Command): void {
  const controller = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(EXIT.interrupted);
    interrupted = true;
    controller.abort();
  };
  const probe = createProbeCommand({
    io: () => {
      process.on('SIGINT', onSigint);
      process.on('SIGTERM', onSigint);
      return { stdout: process.stdout, stderr: process.stderr, signal: controller.signal };
    },
    exit: (code) => process.exit(code),
  });
  const usageExit = (cmd: Command) => {
    cmd.exitOverride((err) => process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage));
    cmd.commands.forEach(usageExit);
  };
  usageExit(probe);
  program.addCommand(probe);
}
