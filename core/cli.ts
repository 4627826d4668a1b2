#!/usr/bin/env node
/**
 * everest-system: the daemon's command line.
 *   everest-system run --config plugins.config.json
 *   everest-system check-config --config plugins.config.json
 */
import 'reflect-metadata';
import { Command, Option } from 'commander';
import type { Logger } from './api.js';
import { loadConfig, type Config } from './config.js';
import { SystemClientError } from './errors.js';
import { Daemon } from './kernel.js';
import { startDemo, type Demo } from './demo.js';
import { createLogger } from './logger.js';
import { createSdNotifier } from './sdNotify.js';

const program = new Command();
program
  .name('everest-system')
  .description("System daemon for EVerest's system_API: firmware update, log upload, reset, system time and boot reason over MQTT");

function readConfigOrExit(file: string): Config {
  try {
    return loadConfig(file);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
}

program
  .command('run')
  .description('run the daemon in the foreground')
  .addOption(new Option('-c, --config <file>', 'configuration file').default('plugins.config.json'))
  .option('--log-level <level>', 'override log.level')
  .action(async (opts: { config: string; logLevel?: string }) => {
    const config = readConfigOrExit(opts.config);
    const log = createLogger({ level: opts.logLevel ?? config.log.level, pretty: config.log.pretty });
    await run(config, log);
  });

program
  .command('check-config')
  .description('validate the configuration and print the resolved plugins and adapters')
  .addOption(new Option('-c, --config <file>', 'configuration file').default('plugins.config.json'))
  .action(async (opts: { config: string }) => {
    const config = readConfigOrExit(opts.config);
    const daemon = new Daemon(config, { logger: createLogger({ level: 'silent' }) });
    try {
      const { plugins, adapters } = await daemon.resolve();
      const out = process.stdout;
      out.write(`config ${opts.config} is valid\n`);
      out.write(`moduleId ${config.moduleId}, topics ${daemon.topics.base}{e2m,m2e}/..., stateDir ${config.stateDir}\n`);
      out.write(`broker ${config.mqtt.embeddedBroker ? `embedded on ${config.mqtt.embeddedBroker.host}:${config.mqtt.embeddedBroker.port}` : config.mqtt.url.replace(/\/\/[^@/]*@/, '//***@')}\n`);
      out.write('plugins:\n');
      for (const p of plugins) {
        out.write(`  ${p.name} (${p.source}): ${p.cls.operations.join(', ')}\n`);
      }
      out.write('adapters:\n');
      for (const [slot, a] of Object.entries(adapters)) out.write(`  ${slot}: ${a.description}\n`);
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(2);
    }
  });

async function run(config: Config, log: Logger): Promise<void> {
  const daemon = new Daemon(config, { logger: log });
  const sd = createSdNotifier({ env: daemon.env, log });
  let demo: Demo | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs + 3000);
    force.unref();
    await sd.stopping();
    await demo?.stop().catch(() => undefined);
    await daemon.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('unhandledRejection', (reason) => {
    log.error({ error: reason instanceof Error ? reason.message : String(reason) }, 'unhandled rejection');
  });
  try {
    await daemon.start();
  } catch (err) {
    if (err instanceof SystemClientError) {
      log.fatal({ code: err.code, details: err.details }, err.message);
      process.stderr.write(`${err.message}\n`);
      await daemon.stop().catch(() => undefined);
      process.exit(2);
    }
    throw err;
  }
  log.info({ moduleId: config.moduleId, broker: daemon.brokerUrl?.replace(/\/\/[^@/]*@/, '//***@'), topics: `${daemon.topics.base}#` }, 'everest-system running');
  await sd.ready(`running, topics ${daemon.topics.base}#`);
  if (config.mqtt.embeddedBroker?.demo && daemon.brokerUrl) {
    demo = await startDemo(daemon.brokerUrl, config.moduleId, config.mqtt.externalPrefix, log);
  }
}

// probe and doctor (mqtt sessions, execa, tinyglobby, picocolors) are loaded only when the command
// line can be one of theirs (or help): `run` starts without them
const first = process.argv[2];
if (first !== 'run' && first !== 'check-config') {
  const [{ registerProbe }, { registerDoctor }] = await Promise.all([import('./probe/index.js'), import('./doctor/index.js')]);
  registerProbe(program);
  registerDoctor(program);
}

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
