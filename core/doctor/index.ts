/**
 * `everest-system doctor`: checks a board against its config without changing anything.
 *
 * Rows: config and plugins; each bound adapter (options valid, its tools present and answering,
 * read-only commands only); state dir writable; free space for the largest expected image; clock
 * sane; broker reachable with the configured credentials/TLS; EVerest heartbeat seen.
 * A missing heartbeat is a WARN, not a FAIL: a vendor brings a board up before EVerest runs.
 * Exit code: 0 without FAIL rows, 1 with any FAIL, 2 when the config cannot be read at all.
 */
import { Command, Option } from 'commander';
import { ADAPTER_SLOTS, type AdapterSlot } from '../api.js';
import { BUILTIN_ADAPTERS } from '../../adapters/index.js';
import { loadConfig, type AdapterConfig, type Config } from '../config.js';
import type { SystemClientError } from '../errors.js';
import { loadAdapter, loadPlugins, type LoadedPlugin } from '../pluginHost.js';
import { ADAPTER_CHECKS } from './adapters.js';
import { checkBrokerAndEverest } from './broker.js';
import { checkClock, checkFreeSpace, checkStateDir } from './system.js';
import { fail, pass, type CheckResult, type Env } from './types.js';

export type { CheckResult, Verdict } from './types.js';

export interface DoctorOptions {
  /** environment the daemon runs with (PATH decides which tools are found); default process.env */
  env?: Env;
  /** how long to wait for EVerest's heartbeat (default 5 s) */
  heartbeatWaitMs?: number;
}

export interface DoctorReport {
  ok: boolean;
  rows: CheckResult[];
}

async function checkAdapter(slot: AdapterSlot, cfg: AdapterConfig, where: string, config: Config, env: Env): Promise<CheckResult[]> {
  const { type, module: ref } = cfg;
  const name = `${slot === 'logSources' ? 'log source' : slot} ${type}`;
  let options: Record<string, unknown>;
  try {
    ({ options } = await loadAdapter(slot, cfg, where, config.baseDir));
  } catch (err) {
    const e = err as SystemClientError;
    const fix =
      e.code === 'ADAPTER_UNKNOWN'
        ? `use one of: ${Object.keys(BUILTIN_ADAPTERS[slot]).join(', ')}, or give "module" (a path relative to the config file, or an installed package) for a third-party adapter`
        : e.code === 'CONFIG_INVALID'
          ? "fix the adapter options in the config (see the adapter's optionsSchema)"
          : 'default-export defineAdapter({ slot, type, optionsSchema, create })';
    return [fail(name, e.message.replace(/\n\s+- /g, '; '), fix)];
  }
  const checks = ref ? undefined : ADAPTER_CHECKS[slot]?.[type];
  if (!checks) return [pass(name, `third-party adapter from ${ref}; options valid (its tools are not known to doctor)`)];
  return checks(name, options, env);
}

/** Runs every check; never changes the board. */
export async function runDoctor(config: Config, options: DoctorOptions = {}): Promise<DoctorReport> {
  const env = options.env ?? process.env;
  const rows: CheckResult[] = [];
  let plugins: LoadedPlugin[] = [];
  try {
    plugins = await loadPlugins(config);
    rows.push(pass('plugins', plugins.map((p) => `${p.name}${p.source === 'built-in' ? '' : ` (${p.source})`}`).join(', ') || 'none enabled'));
  } catch (err) {
    rows.push(fail('plugins', (err as Error).message, 'fix the plugins list (names, module paths, options)'));
  }
  const needed = new Map<AdapterSlot, string[]>();
  for (const p of plugins) for (const s of p.cls.adapters ?? []) needed.set(s, [...(needed.get(s) ?? []), p.name]);
  for (const slot of ADAPTER_SLOTS) {
    const cfg = config.adapters[slot];
    const users = needed.get(slot);
    if (!cfg || (Array.isArray(cfg) && cfg.length === 0)) {
      if (users) rows.push(fail(`${slot}`, `plugin ${users.join(', ')} needs /adapters/${slot}, but the config binds none`, `bind an adapter at /adapters/${slot}, or disable ${users.join(', ')}`));
      continue;
    }
    const list = Array.isArray(cfg) ? cfg.map((c, i) => [c, `/adapters/${slot}/${i}`] as const) : [[cfg, `/adapters/${slot}`] as const];
    for (const [c, where] of list) rows.push(...(await checkAdapter(slot, c, where, config, env)));
  }
  rows.push(await checkStateDir(config.stateDir));
  const firmware = plugins.find((p) => p.name === 'firmware-update' && p.source === 'built-in');
  rows.push(await checkFreeSpace(config.stateDir, firmware ? (firmware.options as { minFreeBytes?: number; maxImageBytes?: number }) : undefined));
  rows.push(checkClock());
  rows.push(...(await checkBrokerAndEverest(config, options.heartbeatWaitMs ?? 5000)));
  return { ok: !rows.some((r) => r.result === 'FAIL'), rows };
}

/** The report as a table: check, result, detail, with the fix under each WARN/FAIL row. */
export function formatReport(report: DoctorReport): string {
  const w = Math.min(32, Math.max(5, ...report.rows.map((r) => r.check.length)));
  const lines = [`${'CHECK'.padEnd(w)}  RESULT  DETAIL`];
  for (const r of report.rows) {
    lines.push(`${r.check.padEnd(w)}  ${r.result.padEnd(6)}  ${r.detail}`);
    if (r.fix && r.result !== 'PASS') lines.push(`${''.padEnd(w)}  ${''.padEnd(6)}  fix: ${r.fix}`);
  }
  const count = (v: string) => report.rows.filter((r) => r.result === v).length;
  lines.push('', `${count('PASS')} passed, ${count('WARN')} warnings, ${count('FAIL')} failed`);
  return `${lines.join('\n')}\n`;
}

/** Adds `doctor` to the CLI. */
export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check this board against the config without changing anything (broker, EVerest, adapter tools, state dir, disk, clock)')
    .addOption(new Option('-c, --config <file>', 'configuration file').default('plugins.config.json'))
    .option('--json', 'print the report as JSON')
    .addOption(new Option('--heartbeat-wait-s <seconds>', 'how long to wait for EVerest\'s heartbeat').default('5'))
    .action(async (opts: { config: string; json?: boolean; heartbeatWaitS: string }) => {
      let config: Config;
      try {
        config = loadConfig(opts.config);
      } catch (err) {
        const report: DoctorReport = { ok: false, rows: [fail('config', (err as Error).message, 'fix the listed keys (everest-system check-config shows the same)')] };
        process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
        process.exit(2);
      }
      const waitS = Number(opts.heartbeatWaitS);
      const report = await runDoctor(config, { heartbeatWaitMs: Number.isFinite(waitS) && waitS >= 0 ? waitS * 1000 : 5000 });
      report.rows.unshift(pass('config', `${opts.config} is valid`));
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      process.exit(report.ok ? 0 : 1);
    });
}
