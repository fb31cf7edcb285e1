import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { serviceBundlePath, type BundledService } from '../infra/build/serviceBundles.ts';

/**
 * A service under benchmark: its own process, as deployed (its bundle, built by run.ts when
 * the bench starts: infra/build/serviceBundles.ts); its log is kept for figures it reports.
 */
const ROOT = resolve(import.meta.dirname, '..');

export interface BenchService {
  child: ChildProcess;
  log: () => string;
  stop(): Promise<void>;
  /** Peak resident set so far (VmHWM), in KiB. */
  peakRssKiB(): number;
  /** CPU time the process has used so far (user + system, all its threads), in seconds; 0 once it has exited. */
  cpuSeconds(): number;
}

/** Linux's clock ticks per second for /proc/<pid>/stat (USER_HZ: 100 on every mainstream architecture). */
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU time a process has used (utime + stime of /proc/<pid>/stat), in seconds; 0 when it is gone. */
export function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) in parentheses: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

export function spawnBenchService(name: BundledService, env: Record<string, string>): BenchService {
  const child = spawn(process.execPath, [...(process.env.BENCH_CPU_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROFILE}`] : []), serviceBundlePath(name)], {
    cwd: ROOT,
    env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 4_000_000) output = output.slice(-2_000_000);
  });
  return {
    child,
    log: () => output,
    cpuSeconds: () => processCpuSeconds(child.pid),
    peakRssKiB: () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0),
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((ok) => child.once('exit', ok));
    },
  };
}

