import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import scriptModule from '../../../adapters/installer/script.js';
import type { InstallProgress, InstallerAdapter } from '../../../core/api.js';
import { makeDeps, processAlive, tempDir, until, writeScript } from './util.js';

async function create(options: Record<string, unknown>, env: Record<string, string> = {}) {
  const deps = makeDeps(tempDir('script-state-'), env);
  const adapter = (await scriptModule.create(options, deps)) as InstallerAdapter;
  return { adapter, deps };
}

function install(adapter: InstallerAdapter, file: string, signal = new AbortController().signal) {
  const progress: InstallProgress[] = [];
  const done = adapter.install(file, { signal, onProgress: (p) => progress.push(p) });
  return { progress, done };
}

describe('script installer', () => {
  it('runs the command with {file} substituted, passes status lines on and reports installed', async () => {
    const dir = tempDir();
    const argvLog = path.join(dir, 'argv');
    const image = path.join(dir, 'fw image.bin');
    fs.writeFileSync(image, 'firmware');
    const prog = writeScript(
      dir,
      'install.sh',
      `for a in "$@"; do echo "$a" >> '${argvLog}'; done
echo Installing
echo "copying 1 of 2"
echo 50%
echo "some warning" >&2
echo Installed
exit 0`,
    );
    const { adapter, deps } = await create({ command: [prog, '--image={file}', '{file}', 'fixed'] });
    const { progress, done } = install(adapter, image);
    const outcome = await done;
    expect(outcome.result).toBe('installed');
    expect(fs.readFileSync(argvLog, 'utf8').split('\n')).toEqual([`--image=${image}`, image, 'fixed', '']);
    expect(progress).toEqual([{ status: 'Installing' }, { percent: 50 }, { status: 'Installed' }]);
    expect(deps.log.text()).toMatch(/running install command/);
  });

  it('reports reboot-required when the script printed InstallRebooting', async () => {
    const dir = tempDir();
    const prog = writeScript(dir, 'install.sh', 'echo Installing; echo InstallRebooting; exit 0');
    const { adapter } = await create({ command: [prog, '{file}'] });
    const { progress, done } = install(adapter, '/nonexistent/fw.bin');
    expect((await done).result).toBe('reboot-required');
    expect(progress.map((p) => p.status)).toEqual(['Installing', 'InstallRebooting']);
  });

  it('finds the command on the PATH of the adapter environment', async () => {
    const bin = tempDir('script-bin-');
    const marker = path.join(bin, 'ran');
    writeScript(bin, 'vendor-fw-install', `echo "$1" > '${marker}'; exit 0`);
    const { adapter } = await create(
      { command: ['vendor-fw-install', '{file}'] },
      { PATH: `${bin}:${process.env.PATH}` },
    );
    expect((await install(adapter, '/data/fw.img').done).result).toBe('installed');
    expect(fs.readFileSync(marker, 'utf8').trim()).toBe('/data/fw.img');
  });

  it('reports a non-zero exit as failed, with the exit code and the last output', async () => {
    const dir = tempDir();
    const prog = writeScript(dir, 'install.sh', 'echo Installing; echo "flash write error at block 7" >&2; exit 3');
    const { adapter, deps } = await create({ command: [prog, '{file}'] });
    const outcome = await install(adapter, '/x').done;
    expect(outcome.result).toBe('failed');
    expect(outcome.message).toMatch(/exit code 3/);
    expect(outcome.message).toMatch(/flash write error at block 7/);
    expect(deps.log.lines.some((l) => l.level === 'warn' && /exit code 3/.test(l.msg ?? ''))).toBe(true);
  });

  it('takes a printed failure status over the exit code', async () => {
    const dir = tempDir();
    const verifyFail = writeScript(dir, 'a.sh', 'echo Installing; echo "bad checksum"; echo InstallVerificationFailed; exit 1');
    const installFail = writeScript(dir, 'b.sh', 'echo Installing; echo InstallationFailed; exit 0');
    const a = await install((await create({ command: [verifyFail] })).adapter, '/x').done;
    expect(a).toMatchObject({ result: 'verification-failed' });
    expect(a.message).toMatch(/InstallVerificationFailed: bad checksum/);
    const b = await install((await create({ command: [installFail] })).adapter, '/x').done;
    expect(b.result).toBe('failed');
    expect(b.message).toMatch(/InstallationFailed/);
  });

  it('reports a command that cannot be started as failed', async () => {
    const { adapter } = await create({ command: ['/nonexistent/dir/install', '{file}'] });
    const outcome = await install(adapter, '/x').done;
    expect(outcome.result).toBe('failed');
    expect(outcome.message).toMatch(/could not start/);
  });

  it('confirm() runs verify after the reboot: exit 0 is installed, otherwise failed', async () => {
    const dir = tempDir();
    const ok = writeScript(dir, 'ok.sh', 'echo "version 2.0 running"; exit 0');
    const bad = writeScript(dir, 'bad.sh', 'echo "still on 1.0" >&2; exit 4');
    const prog = writeScript(dir, 'install.sh', 'exit 0');
    expect(await (await create({ command: [prog], verify: [ok] })).adapter.confirm({})).toEqual({ result: 'installed' });
    const failed = await (await create({ command: [prog], verify: [bad, 'arg'] })).adapter.confirm({});
    expect(failed.result).toBe('failed');
    expect(failed.message).toMatch(/exit code 4.*still on 1\.0/);
    expect(await (await create({ command: [prog] })).adapter.confirm({})).toEqual({ result: 'installed' });
  });

  it('abort kills the install command and the processes it started', async () => {
    const dir = tempDir();
    const pids = path.join(dir, 'pids');
    const prog = writeScript(dir, 'install.sh', `echo Installing; sleep 30 & echo "$$ $!" > '${pids}'; wait`);
    const { adapter } = await create({ command: [prog] });
    const ac = new AbortController();
    const { progress, done } = install(adapter, '/x', ac.signal);
    await until(() => fs.existsSync(pids) && fs.readFileSync(pids, 'utf8').includes(' '), 10_000, 'pid file');
    const [shell, sleeper] = fs.readFileSync(pids, 'utf8').trim().split(' ').map(Number) as [number, number];
    expect(processAlive(sleeper)).toBe(true);
    ac.abort();
    const outcome = await done;
    expect(outcome).toEqual({ result: 'failed', message: 'installation aborted' });
    expect(progress).toEqual([{ status: 'Installing' }]);
    await until(() => !processAlive(shell) && !processAlive(sleeper), 10_000, 'script processes to end');
  });

  it('a process the command left behind holding its output does not hold up the result, and is ended', async () => {
    const dir = tempDir();
    const pids = path.join(dir, 'pids');
    // the background sleep inherits stdout, so the output stays open after the script exited
    const prog = writeScript(dir, 'install.sh', `echo Installing; sleep 30 & echo "$!" > '${pids}'; echo Installed; exit 0`);
    const { adapter } = await create({ command: [prog] });
    const started = Date.now();
    const { progress, done } = install(adapter, '/x');
    const outcome = await done;
    expect(outcome.result).toBe('installed');
    expect(progress).toEqual([{ status: 'Installing' }, { status: 'Installed' }]);
    expect(Date.now() - started).toBeLessThan(10_000);
    const sleeper = Number(fs.readFileSync(pids, 'utf8').trim());
    await until(() => !processAlive(sleeper), 10_000, 'the leftover process to end');
  });

  it('ends a command that runs longer than timeoutS', async () => {
    const dir = tempDir();
    const prog = writeScript(dir, 'install.sh', 'echo Installing; exec sleep 30');
    const { adapter } = await create({ command: [prog], timeoutS: 0.3 });
    const started = Date.now();
    const outcome = await install(adapter, '/x').done;
    expect(outcome.result).toBe('failed');
    expect(outcome.message).toMatch(/timed out/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('refuses a config without a command argv', async () => {
    await expect(create({ command: 'install.sh {file}' })).rejects.toThrow(/non-empty array/);
  });
});
