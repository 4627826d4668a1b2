#!/usr/bin/env node
/**
 * Self-contained build of the daemon for boards: one bundled ESM file plus the files it reads at
 * run time, laid out like the package so core/assets.ts finds them next to the bundle:
 *
 *   <out>/bin/everest-system.mjs     the daemon, every built-in plugin and adapter (esbuild)
 *   <out>/spec/system_API.yaml       the message contract (validators are compiled in; marks the root)
 *   <out>/core/config.schema.json    config schema (read at start-up)
 *   <out>/package.json               name, version, "type": "module", bin; dependencies only if
 *                                    something had to stay out of the bundle
 *
 * Copy <out> to the board (e.g. /usr/lib/everest-system) and run
 * `node /usr/lib/everest-system/bin/everest-system.mjs run --config /etc/everest-system/plugins.config.json`.
 * No dev dependencies and no node_modules are needed on the board.
 *
 *   node deploy/build-bundle.mjs [--outdir dist-bundle] [--json]
 */
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const outdir = path.resolve(root, args.includes('--outdir') ? args[args.indexOf('--outdir') + 1] : 'dist-bundle');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));

/**
 * Optional native helpers that some dependencies try to `require` inside try/catch and work
 * without (ws: bufferutil, utf-8-validate; systeminformation: osx-temperature-sensor on macOS).
 * They stay external and are not shipped: the require fails and the pure-JS path is used.
 */
const OPTIONAL_NATIVE = ['bufferutil', 'utf-8-validate', 'osx-temperature-sensor'];
/** Dependencies that cannot be bundled and must be installed next to the bundle (none today). */
const UNBUNDLEABLE = [];

rmSync(outdir, { recursive: true, force: true });
mkdirSync(path.join(outdir, 'bin'), { recursive: true });
const outfile = path.join(outdir, 'bin', 'everest-system.mjs');

const started = Date.now();
const result = await build({
  entryPoints: [path.join(root, 'core/cli.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // CommonJS dependencies call require() and use __dirname; give the ESM bundle both
  banner: {
    js: [
      '#!/usr/bin/env node',
      "import { createRequire as __esc_createRequire } from 'node:module';",
      "import { fileURLToPath as __esc_fileURLToPath } from 'node:url';",
      "import { dirname as __esc_dirname } from 'node:path';",
      'const require = __esc_createRequire(import.meta.url);',
      'const __filename = __esc_fileURLToPath(import.meta.url);',
      'const __dirname = __esc_dirname(__filename);',
    ].join('\n'),
  },
  external: [...OPTIONAL_NATIVE, ...UNBUNDLEABLE],
  minifyWhitespace: true,
  minifySyntax: true,
  // no keepNames: it wraps every function and closure in __name(), an Object.defineProperty call
  // each time one is created, which cost about 5 % of the CPU of a request/reply round trip.
  // Nothing here reads Function#name. Stack traces show the bundle's names, which are the
  // source's except where esbuild appends a digit to keep two modules' names apart.
  keepNames: false,
  legalComments: 'linked',
  sourcemap: false,
  metafile: true,
  logLevel: 'warning',
  tsconfig: path.join(root, 'tsconfig.json'),
});
// the shebang from the banner must be the first line; esbuild keeps the one of core/cli.ts too
const code = readFileSync(outfile, 'utf8').replace(/^(#!.*\n)(#!.*\n)/, '$1');
writeFileSync(outfile, code, { mode: 0o755 });

mkdirSync(path.join(outdir, 'spec'), { recursive: true });
mkdirSync(path.join(outdir, 'core'), { recursive: true });
cpSync(path.join(root, 'spec/system_API.yaml'), path.join(outdir, 'spec/system_API.yaml'));
cpSync(path.join(root, 'core/config.schema.json'), path.join(outdir, 'core/config.schema.json'));
const dependencies = Object.fromEntries(UNBUNDLEABLE.map((d) => [d, pkg.dependencies[d]]));
writeFileSync(
  path.join(outdir, 'package.json'),
  `${JSON.stringify(
    {
      name: pkg.name,
      version: pkg.version,
      description: pkg.description,
      license: pkg.license,
      type: 'module',
      engines: pkg.engines,
      bin: { 'everest-system': 'bin/everest-system.mjs' },
      ...(UNBUNDLEABLE.length ? { dependencies } : {}),
    },
    null,
    2,
  )}\n`,
);

const du = (p) => (statSync(p).isDirectory() ? readdirSync(p).reduce((n, e) => n + du(path.join(p, e)), 0) : statSync(p).size);
const bundleBytes = statSync(outfile).size;
const totalBytes = du(outdir);
const inputs = Object.keys(result.metafile.inputs).length;
const report = { outdir: path.relative(root, outdir) || '.', bundle: path.relative(root, outfile), bundleBytes, totalBytes, inputs, ms: Date.now() - started };
if (args.includes('--json')) {
  process.stdout.write(`${JSON.stringify(report)}\n`);
} else {
  const mb = (n) => `${(n / 1024 / 1024).toFixed(2)} MB`;
  process.stdout.write(`${report.bundle}: ${mb(bundleBytes)} (${inputs} input files)\n${report.outdir}/ total on disk: ${mb(totalBytes)} in ${report.ms} ms\n`);
}
