import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { sleep } from './fixtures.js';

/**
 * This machine may be shared (other engineers run test suites on it): a benchmark
 * must know whether something else was using the CPU while it measured. The meter
 * compares the CPU time of every process between two snapshots and splits it into
 * "ours" (this process and its descendants: children, and the devstack's PostgreSQL
 * and Kafka when the devstack started them) and "foreign" (everything else).
 * A process's time includes its reaped children's (cutime/cstime), so work of
 * processes that came and went between the snapshots is still counted, as long as
 * their parent lives. What no live process accounts for (kernel work, hypervisor
 * steal, orphans) is reported as unattributed: a benchmark treats it as foreign.
 * Linux only (/proc); elsewhere it reports nothing.
 */

const TICKS_PER_S = clockTicks();
const ROLES: Record<string, string> = { node: 'node children', postgres: 'postgres', java: 'kafka (java)' };

interface ProcTimes {
  ppid: number;
  ticks: number;
  command: string;
}

export interface CpuUsage {
  wallS: number;
  /** Average number of cores busy, machine-wide (from /proc/stat). */
  busyCores: number;
  ownCores: number;
  foreignCores: number;
  /** Busy time no process accounts for: kernel, hypervisor steal, orphaned processes. */
  unattributedCores: number;
  /** Our CPU by role: this process, its node children, PostgreSQL, Kafka (java). */
  ownByRole: Record<string, number>;
  /** The foreign processes that used the most, for the log. */
  foreignTop: Array<{ pid: number; command: string; cores: number }>;
}

export class CpuMeter {
  private constructor(
    private readonly startedAt: number,
    private readonly procs: Map<number, ProcTimes>,
    private readonly stat: { busy: number; total: number },
  ) {}

  static async start(): Promise<CpuMeter> {
    return new CpuMeter(performance.now(), await processTimes(), await systemTimes());
  }

  async stop(): Promise<CpuUsage> {
    const wallS = (performance.now() - this.startedAt) / 1000;
    const [procs, stat] = await Promise.all([processTimes(), systemTimes()]);
    const ours = (pid: number): boolean => {
      for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
        if (p === process.pid) return true;
        p = procs.get(p)?.ppid ?? 0;
      }
      return false;
    };
    let own = 0;
    const byRole = new Map<string, number>();
    const foreign: Array<{ pid: number; command: string; cores: number }> = [];
    for (const [pid, now] of procs) {
      const delta = now.ticks - (this.procs.get(pid)?.ticks ?? 0);
      if (delta <= 0) continue;
      const cores = delta / TICKS_PER_S / wallS;
      if (ours(pid)) {
        own += cores;
        const role = pid === process.pid ? 'runner' : (ROLES[now.command] ?? now.command);
        byRole.set(role, (byRole.get(role) ?? 0) + cores);
      } else foreign.push({ pid, command: now.command, cores });
    }
    const cores =
      stat.total - this.stat.total > 0
        ? ((stat.busy - this.stat.busy) / (stat.total - this.stat.total)) * coreCount()
        : 0;
    foreign.sort((a, b) => b.cores - a.cores);
    const r = (v: number) => Math.round(v * 100) / 100;
    return {
      wallS: r(wallS),
      busyCores: r(cores),
      ownCores: r(own),
      foreignCores: r(foreign.reduce((sum, f) => sum + f.cores, 0)),
      unattributedCores: r(Math.max(0, cores - own - foreign.reduce((sum, f) => sum + f.cores, 0))),
      ownByRole: Object.fromEntries([...byRole].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, r(v)])),
      foreignTop: foreign.slice(0, 3).map((f) => ({ ...f, cores: r(f.cores) })),
    };
  }
}

/**
 * Waits until other processes leave the CPU alone (foreign load below `maxForeignCores`
 * over a `windowMs` sample), for at most `maxWaitMs`; returns how long it waited and
 * the last sample. Our own processes (idle services included) do not count.
 */
export async function waitForQuiet(
  log: (message: string) => void,
  { maxForeignCores = 0.2, windowMs = 3_000, maxWaitMs = 15 * 60_000 } = {},
): Promise<{ waitedS: number; usage: CpuUsage }> {
  const started = performance.now();
  let announced = false;
  for (;;) {
    const meter = await CpuMeter.start();
    await sleep(windowMs);
    const usage = await meter.stop();
    const waitedS = Math.round((performance.now() - started) / 100) / 10;
    if (disturbance(usage) <= maxForeignCores) return { waitedS, usage };
    if (performance.now() - started > maxWaitMs) {
      log(`machine still busy after ${waitedS} s (foreign load ${disturbance(usage)} cores); measuring anyway`);
      return { waitedS, usage };
    }
    if (!announced) {
      const top = usage.foreignTop.map((f) => `${f.command} ${f.cores}`).join(', ');
      log(`waiting for the machine to be quiet: others use ${disturbance(usage)} cores (${top})`);
      announced = true;
    }
  }
}

/**
 * CPU that was not ours: machine-wide busy time minus our processes' (which is exact:
 * our children and the devstack's services are all descendants of this process).
 * Foreign processes' own figures can overcount (a reaped child's whole life lands in
 * its parent's cutime), so they only name the culprits.
 */
export function disturbance(usage: CpuUsage): number {
  return Math.round(Math.max(0, usage.busyCores - usage.ownCores) * 100) / 100;
}

async function processTimes(): Promise<Map<number, ProcTimes>> {
  const out = new Map<number, ProcTimes>();
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return out;
  }
  await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e))
      .map(async (e) => {
        try {
          const stat = await readFile(`/proc/${e}/stat`, 'utf8');
          const close = stat.lastIndexOf(')');
          const fields = stat.slice(close + 2).split(' ');
          out.set(Number(e), {
            ppid: Number(fields[1]),
            // utime + stime + cutime + cstime: own work and that of reaped children
            ticks: Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]),
            command: stat.slice(stat.indexOf('(') + 1, close),
          });
        } catch {
          // the process exited between readdir and readFile
        }
      }),
  );
  return out;
}

async function systemTimes(): Promise<{ busy: number; total: number }> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
    const [, ...values] = line.trim().split(/\s+/);
    const n = values.slice(0, 8).map(Number);
    const total = n.reduce((a, b) => a + b, 0);
    const idle = (n[3] ?? 0) + (n[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

function coreCount(): number {
  return availableParallelism();
}
