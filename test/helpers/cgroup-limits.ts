import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { processCgroupDirs } from '../../src/worker/runtime/cgroups';

/** A process's limits as its cgroups hold them, the same on cgroup v1 and v2; null means unlimited. */
export interface CgroupLimits {
  memoryBytes: number | null;
  cpuQuotaUs: number | null;
  cpuPeriodUs: number;
  /** cpu.weight on v2; on v1 what runc would set for cpu.shares there. */
  cpuWeight: number;
  /** cpu.shares, v1 only (null on v2). */
  cpuShares: number | null;
  pids: number | null;
  /** The cgroup dirs the figures were read from, by controller ("" is the unified hierarchy). */
  dirs: Map<string, string>;
}

/** runc's conversion of v1 cpu.shares to v2 cpu.weight. */
export function cpuWeightOfShares(shares: number): number {
  return shares === 0 ? 0 : 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** v1 reports "no memory limit" as the largest page-aligned int64. */
const V1_UNLIMITED = 2 ** 62;

/**
 * The limits in the cgroup dirs of a process (cgroupDirs()): each controller is read from its v1
 * hierarchy if it has one, else from the unified one with the v2 file names and formats.
 */
export function readLimits(dirs: Map<string, string>, read: (file: string) => string): CgroupLimits {
  const dirOf = (controller: string): { v1: boolean; dir: string } => {
    const v1 = dirs.get(controller);
    if (v1) return { v1: true, dir: v1 };
    const v2 = dirs.get('');
    if (!v2) throw new Error(`the process is in no cgroup with the ${controller} controller`);
    return { v1: false, dir: v2 };
  };
  const file = (d: { dir: string }, name: string) => read(path.join(d.dir, name)).trim();
  const limit = (s: string) => (s === 'max' || s === '-1' || Number(s) >= V1_UNLIMITED ? null : Number(s));

  const mem = dirOf('memory');
  const cpu = dirOf('cpu');
  const pids = dirOf('pids');
  let cpuQuotaUs: number | null;
  let cpuPeriodUs: number;
  let cpuShares: number | null = null;
  let cpuWeight: number;
  if (cpu.v1) {
    cpuQuotaUs = limit(file(cpu, 'cpu.cfs_quota_us'));
    cpuPeriodUs = Number(file(cpu, 'cpu.cfs_period_us'));
    cpuShares = Number(file(cpu, 'cpu.shares'));
    cpuWeight = cpuWeightOfShares(cpuShares);
  } else {
    const [quota, period] = file(cpu, 'cpu.max').split(' ');
    cpuQuotaUs = limit(quota);
    cpuPeriodUs = Number(period);
    cpuWeight = Number(file(cpu, 'cpu.weight'));
  }
  return {
    memoryBytes: limit(file(mem, mem.v1 ? 'memory.limit_in_bytes' : 'memory.max')),
    cpuQuotaUs,
    cpuPeriodUs,
    cpuWeight,
    cpuShares,
    pids: limit(file(pids, 'pids.max')),
    dirs,
  };
}

/** The limits of a running process, found through its own /proc/<pid>/cgroup. */
export async function cgroupLimitsOf(pid: number): Promise<CgroupLimits> {
  return readLimits(await processCgroupDirs(pid), (f) => readFileSync(f, 'utf8'));
}
