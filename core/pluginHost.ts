/**
 * Loads the plugins named in the config (built-ins by name, third-party ones from a file
 * path or package name), checks what they declare against each other and the config, binds
 * the adapters they ask for, and resolves each plugin in its own child container.
 * Every inconsistency is a start-up error that names the culprit.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import {
  ADAPTER_SLOTS, API_VERSION, OPERATIONS, SLOT_TOKENS, TOKENS,
  type AdapterDeps, type AdapterModule, type AdapterSlot, type Handler, type Logger, type Operation,
  type Plugin, type PluginClass, type PluginContext,
} from './api.js';
import { BUILTIN_ADAPTERS } from '../adapters/index.js';
import { BUILTIN_PLUGINS } from '../plugins/index.js';
import type { AdapterConfig, Config, PluginConfig } from './config.js';
import { builtInValidator, compileSchema, formatAjvErrors } from './config.js';
import { SystemClientError } from './errors.js';

/** A plugin whose class is loaded and checked, not yet instantiated. */
export interface LoadedPlugin {
  name: string;
  cls: PluginClass;
  options: Record<string, unknown>;
  /** where it came from: "built-in" or the module reference */
  source: string;
}

/** Adapters bound for the slots that the loaded plugins need. */
export type BoundAdapters = Partial<Record<AdapterSlot, { description: string; value: unknown }>>;

function isRelativeOrAbsolutePath(ref: string): boolean {
  return ref.startsWith('.') || path.isAbsolute(ref);
}

/** Imports a third-party module: a path (relative to the config file) or an installed package name. */
async function importModule(ref: string, baseDir: string): Promise<Record<string, unknown>> {
  const spec = isRelativeOrAbsolutePath(ref) ? pathToFileURL(path.resolve(baseDir, ref)).href : ref;
  return (await import(spec)) as Record<string, unknown>;
}

async function validateOptions(schema: Record<string, unknown> | undefined, options: Record<string, unknown>, where: string, builtIn: boolean): Promise<Record<string, unknown>> {
  const value = structuredClone(options);
  if (!schema) return value;
  // a built-in schema edited since the validators were generated is compiled now (the tests fail on it)
  const validate = (builtIn ? builtInValidator(schema) : undefined) ?? (await compileSchema(schema));
  if (!validate(value)) {
    throw new SystemClientError('CONFIG_INVALID', `invalid options at ${where}:`, formatAjvErrors(validate.errors, where));
  }
  return value;
}

function checkPluginClass(cls: unknown, name: string, source: string): PluginClass {
  const fail = (why: string) => {
    throw new SystemClientError('PLUGIN_INVALID', `plugin "${name}" (${source}) ${why}`);
  };
  if (typeof cls !== 'function') fail('does not default-export a plugin class');
  const c = cls as PluginClass;
  if (typeof c.pluginName !== 'string') fail('has no static pluginName');
  if (c.apiVersion !== API_VERSION) fail(`is written for plugin API ${String(c.apiVersion)}, this daemon provides ${API_VERSION}`);
  if (!Array.isArray(c.operations)) fail('has no static operations array');
  for (const op of c.operations) if (!OPERATIONS.includes(op)) fail(`declares unknown operation "${String(op)}" (known: ${OPERATIONS.join(', ')})`);
  for (const slot of c.adapters ?? []) if (!ADAPTER_SLOTS.includes(slot)) fail(`asks for unknown adapter slot "${String(slot)}" (known: ${ADAPTER_SLOTS.join(', ')})`);
  return c;
}

/** Resolves the plugin list of the config to checked classes with validated options. */
export async function loadPlugins(config: Config): Promise<LoadedPlugin[]> {
  const entries: PluginConfig[] = (config.plugins ?? Object.keys(BUILTIN_PLUGINS).map((name) => ({ name, options: {}, enabled: true })))
    .filter((p) => p.enabled);
  const loaded: LoadedPlugin[] = [];
  for (const [i, entry] of entries.entries()) {
    const where = config.plugins ? `/plugins/${config.plugins.indexOf(entry)}` : `built-in ${entry.name}`;
    let cls: unknown;
    let source: string;
    if (entry.module) {
      source = entry.module;
      try {
        const mod = await importModule(entry.module, config.baseDir);
        cls = mod.default ?? mod.plugin;
      } catch (err) {
        throw new SystemClientError('PLUGIN_LOAD_FAILED', `cannot load plugin "${entry.name}" from ${entry.module} (${where}): ${(err as Error).message}`);
      }
    } else {
      source = 'built-in';
      const loader = BUILTIN_PLUGINS[entry.name];
      if (!loader) {
        throw new SystemClientError(
          'PLUGIN_UNKNOWN',
          `unknown plugin "${entry.name}" at ${where}; built-in plugins are: ${Object.keys(BUILTIN_PLUGINS).join(', ') || '(none)'}; a third-party plugin needs "module"`,
        );
      }
      cls = (await loader()).default;
    }
    const checked = checkPluginClass(cls, entry.name, source);
    const options = await validateOptions(checked.optionsSchema, resolvePaths(entry.options, config.baseDir), `${where}/options`, !entry.module);
    loaded.push({ name: entry.name, cls: checked, options, source });
    void i;
  }
  // two plugins claiming one operation
  const owners = new Map<Operation, LoadedPlugin>();
  for (const p of loaded) {
    for (const op of p.cls.operations) {
      const other = owners.get(op);
      if (other) {
        throw new SystemClientError(
          'OPERATION_CLAIMED_TWICE',
          `operation "${op}" is claimed by both plugin "${other.name}" (${other.source}) and plugin "${p.name}" (${p.source}); disable one of them`,
        );
      }
      owners.set(op, p);
    }
  }
  return loaded;
}

/** Loads and creates the adapters that the plugins need; unknown or invalid ones are start-up errors. */
export async function bindAdapters(config: Config, plugins: LoadedPlugin[], deps: AdapterDeps): Promise<BoundAdapters> {
  const needed = new Map<AdapterSlot, string[]>();
  for (const p of plugins) for (const slot of p.cls.adapters ?? []) needed.set(slot, [...(needed.get(slot) ?? []), p.name]);
  const bound: BoundAdapters = {};
  for (const [slot, users] of needed) {
    const cfg = config.adapters[slot];
    if (!cfg || (Array.isArray(cfg) && cfg.length === 0)) {
      throw new SystemClientError(
        'ADAPTER_MISSING',
        `plugin ${users.map((u) => `"${u}"`).join(', ')} needs an adapter bound at /adapters/${slot}${slot === 'logSources' ? ' (a non-empty array)' : ''}, but the config has none`,
      );
    }
    if (slot === 'logSources') {
      const list = cfg as AdapterConfig[];
      const sources = [];
      for (const [i, item] of list.entries()) sources.push(await createAdapter(slot, item, `/adapters/logSources/${i}`, config, deps));
      bound[slot] = { description: list.map((c) => c.type).join(', '), value: sources };
    } else {
      const item = cfg as AdapterConfig;
      bound[slot] = { description: item.module ? `${item.type} (${item.module})` : item.type, value: await createAdapter(slot, item, `/adapters/${slot}`, config, deps) };
    }
  }
  return bound;
}

/**
 * Loads an adapter module (built-in by type, or third-party by `module`) and validates its
 * options, without creating it. Throws SystemClientError naming the config path.
 */
export async function loadAdapter(
  slot: AdapterSlot,
  cfg: AdapterConfig,
  where: string,
  baseDir: string,
): Promise<{ module: AdapterModule; options: Record<string, unknown> }> {
  const { type, module: ref, ...options } = cfg;
  let mod: AdapterModule | undefined;
  if (ref) {
    try {
      const imported = await importModule(ref, baseDir);
      mod = (imported.default ?? imported.adapter) as AdapterModule | undefined;
    } catch (err) {
      throw new SystemClientError('ADAPTER_UNKNOWN', `cannot load adapter "${type}" from ${ref} (${where}): ${(err as Error).message}`);
    }
  } else {
    const loader = (BUILTIN_ADAPTERS[slot] as Record<string, () => Promise<{ default: AdapterModule }>>)[type];
    if (!loader) {
      const known = Object.keys(BUILTIN_ADAPTERS[slot]);
      throw new SystemClientError(
        'ADAPTER_UNKNOWN',
        `${where}/type: unknown ${slot} adapter "${type}"; built-in ones are: ${known.join(', ') || '(none)'}; a third-party adapter needs "module"`,
      );
    }
    mod = (await loader()).default;
  }
  if (!mod || typeof mod.create !== 'function') throw new SystemClientError('ADAPTER_INVALID', `${where}: module does not default-export an adapter (defineAdapter({...}))`);
  if (mod.slot !== slot) throw new SystemClientError('ADAPTER_INVALID', `${where}: adapter "${type}" is a ${mod.slot} adapter, not a ${slot} adapter`);
  return { module: mod, options: await validateOptions(mod.optionsSchema, resolvePaths(options, baseDir), where, !ref) };
}

async function createAdapter(slot: AdapterSlot, cfg: AdapterConfig, where: string, config: Config, deps: AdapterDeps): Promise<unknown> {
  const { module: mod, options } = await loadAdapter(slot, cfg, where, config.baseDir);
  return mod.create(options, { ...deps, log: deps.log.child({ adapter: `${slot}:${cfg.type}` }) });
}

/** Relative paths in adapter options ("./x", "../x") resolve against the config file's folder. */
export function resolvePaths(options: Record<string, unknown>, baseDir: string): Record<string, unknown> {
  const fix = (v: unknown): unknown => {
    if (typeof v === 'string' && (v.startsWith('./') || v.startsWith('../'))) return path.resolve(baseDir, v);
    if (Array.isArray(v)) return v.map(fix);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fix(x)]));
    return v;
  };
  return fix(options) as Record<string, unknown>;
}

/** A running plugin instance with its handlers. */
export interface PluginInstance {
  name: string;
  instance: Plugin;
  handlers: Map<Operation, Handler<Operation>>;
}

/** Creates a plugin in its own child container, with its context and adapters registered. */
export function instantiate(
  parent: DependencyContainer,
  plugin: LoadedPlugin,
  context: PluginContext,
  adapters: BoundAdapters,
): PluginInstance {
  const c = parent.createChildContainer();
  c.register(TOKENS.Context, { useValue: context });
  c.register(TOKENS.Logger, { useValue: context.log });
  c.register(TOKENS.Options, { useValue: context.options });
  c.register(TOKENS.State, { useValue: context.state });
  c.register(TOKENS.Everest, { useValue: context.everest });
  c.register(TOKENS.ResetVetoes, { useValue: context.resetVetoes });
  c.register(TOKENS.BootReason, { useValue: context.bootReason });
  for (const slot of plugin.cls.adapters ?? []) c.register(SLOT_TOKENS[slot], { useValue: adapters[slot]!.value });
  let instance: Plugin;
  try {
    instance = plugin.cls.inject
      ? new plugin.cls(...plugin.cls.inject.map((t) => c.resolve(t)))
      : (c.resolve(plugin.cls as never) as Plugin);
  } catch (err) {
    throw new SystemClientError('PLUGIN_INVALID', `cannot construct plugin "${plugin.name}": ${(err as Error).message}`);
  }
  const declared = new Set(plugin.cls.operations);
  const provided = typeof instance.handlers === 'function' ? instance.handlers() : {};
  const handlers = new Map<Operation, Handler<Operation>>();
  for (const op of declared) {
    const h = (provided as Record<string, unknown>)[op];
    if (typeof h !== 'function') throw new SystemClientError('PLUGIN_INVALID', `plugin "${plugin.name}" declares "${op}" but handlers() has no function for it`);
    handlers.set(op, (h as Handler<Operation>).bind(instance));
  }
  for (const op of Object.keys(provided)) {
    if (!declared.has(op as Operation)) throw new SystemClientError('PLUGIN_INVALID', `plugin "${plugin.name}" handles "${op}" without declaring it in static operations`);
  }
  return { name: plugin.name, instance, handlers };
}

export { rootContainer };
