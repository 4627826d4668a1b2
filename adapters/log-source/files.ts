/**
 * files log source: log files matched by glob patterns (EVerest's OCPP message logs, session logs,
 * the OCPP security log, ...), chosen by modification time for the request's window.
 *
 * Rotated files (`x.log`, `x.log.1`, `x.log.2.gz`, `x.log-20261120`) form a group. Within a group
 * a file holds what was written after the next older file's last write up to its own mtime, so a
 * file is included when that span meets the window; the oldest file of a group (or a file without
 * siblings) may hold anything up to its mtime. Compressed files (.gz) are decompressed into the
 * archive, so their text is redacted like the rest.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as zlib from 'node:zlib';
import { defineAdapter, type LogSink, type LogSource, type LogWindow } from '../../core/api.js';

export interface FilesOptions {
  /** glob patterns (absolute, or relative to the daemon's working directory) */
  paths: string[];
  /** sub-directory inside the source's directory of the archive (the file's path follows) */
  name?: string;
  /** decompress .gz files (default true) */
  decompress?: boolean;
  logTypes?: string[];
}

interface Candidate {
  path: string;
  mtime: Date;
  size: number;
}

/** The path with rotation suffixes removed: the key of its rotation group. */
export function rotationBase(p: string): string {
  let base = p;
  for (;;) {
    const next = base.replace(/\.gz$|\.xz$|\.zst$|\.\d+$|-\d{8}(?:\d{2,6})?$/, '');
    if (next === base) return base;
    base = next;
  }
}

/** Which candidates may hold entries within `window` (see the module comment). */
export function selectByWindow(files: Candidate[], window: LogWindow): { included: Candidate[]; excluded: Candidate[] } {
  const groups = new Map<string, Candidate[]>();
  for (const f of files) {
    const key = rotationBase(f.path);
    const g = groups.get(key) ?? [];
    g.push(f);
    groups.set(key, g);
  }
  const included: Candidate[] = [];
  const excluded: Candidate[] = [];
  for (const g of groups.values()) {
    g.sort((a, b) => a.mtime.getTime() - b.mtime.getTime());
    g.forEach((f, i) => {
      const from = i === 0 ? -Infinity : g[i - 1]!.mtime.getTime();
      const to = f.mtime.getTime();
      const ok = (!window.since || to >= window.since.getTime()) && (!window.until || from <= window.until.getTime());
      (ok ? included : excluded).push(f);
    });
  }
  return { included, excluded };
}

export default defineAdapter({
  slot: 'logSources',
  type: 'files',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['paths'],
    properties: {
      paths: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
      name: { type: 'string', minLength: 1 },
      decompress: { type: 'boolean', default: true },
      logTypes: { type: 'array', items: { type: 'string', minLength: 1 } },
    },
  },
  create(options, deps): LogSource {
    const o = options as unknown as FilesOptions;
    return {
      type: 'files',
      logTypes: o.logTypes,
      async collect(window: LogWindow, sink: LogSink, signal: AbortSignal): Promise<void> {
        const { glob } = await import('tinyglobby'); // loaded when a glob is evaluated, not at start-up
        const matched = await glob(o.paths, { absolute: true, onlyFiles: true, dot: true, followSymbolicLinks: false });
        const candidates: Candidate[] = [];
        for (const p of matched.sort()) {
          try {
            const st = await fsp.stat(p);
            if (st.isFile()) candidates.push({ path: p, mtime: st.mtime, size: st.size });
          } catch (err) {
            sink.note(`${p}: ${(err as Error).message}`);
          }
        }
        if (candidates.length === 0) sink.note(`no file matches ${o.paths.join(', ')}`);
        const { included, excluded } = selectByWindow(candidates, window);
        for (const f of excluded.slice(0, 100)) sink.note(`${f.path}: outside the time window (modified ${f.mtime.toISOString()})`);
        if (excluded.length > 100) sink.note(`${excluded.length - 100} more files outside the time window`);
        for (const f of included) {
          signal.throwIfAborted();
          const gz = (o.decompress ?? true) && f.path.endsWith('.gz');
          const rs = fs.createReadStream(f.path);
          const content = gz ? rs.pipe(zlib.createGunzip()) : rs;
          if (gz) rs.on('error', (err) => content.destroy(err));
          try {
            await sink.add({
              name: `${o.name ? `${o.name}/` : ''}${gz ? f.path.slice(0, -3) : f.path}`,
              content,
              mtime: f.mtime,
              size: gz ? undefined : f.size,
            });
          } catch (err) {
            rs.destroy();
            signal.throwIfAborted();
            deps.log.warn({ file: f.path, err: (err as Error).message }, 'log file could not be read');
            sink.note(`${f.path}: could not be read: ${(err as Error).message}`);
          }
        }
      },
    };
  },
});
