import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cgroupDirs, controllerDir, hierarchyMounts, parseProcCgroup, processCgroupDirs } from '../../src/worker/runtime/cgroups';
import { cpuWeightOfShares, readLimits } from '../helpers/cgroup-limits';

// mountinfo and /proc/<pid>/cgroup as three kinds of host show them, for a container runc put in
// the cgroup /shoal/c1.

/** Debian 12, Fedora, Ubuntu 22.04+: the unified hierarchy only. */
const V2_MOUNTS = `22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;
const V2_PROC = '0::/shoal/c1\n';

/** This machine: v1 controllers, each mounted on its own, plus name=systemd and the unified hierarchy. */
const HYBRID_MOUNTS = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:32 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
37 30 0:34 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const HYBRID_PROC = `9:name=systemd:/shoal/c1
8:pids:/shoal/c1
7:blkio:/shoal/c1
6:freezer:/shoal/c1
5:devices:/shoal/c1
4:memory:/shoal/c1
3:cpuset:/shoal/c1
2:cpuacct:/shoal/c1
1:cpu:/shoal/c1
0::/system.slice/shoald.service
`;

/** CentOS 7 and older systemd: v1 only, cpu and cpuacct co-mounted. */
const V1_MOUNTS = `25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
`;
const V1_PROC = `4:cpu,cpuacct:/shoal/c1
3:memory:/shoal/c1
2:pids:/shoal/c1
1:name=systemd:/user.slice/session-1.scope
`;

describe('cgroup places', () => {
  it('parses /proc/<pid>/cgroup, the unified hierarchy having no controllers', () => {
    expect(parseProcCgroup(V1_PROC)).toEqual([
      { controllers: ['cpu', 'cpuacct'], path: '/shoal/c1' },
      { controllers: ['memory'], path: '/shoal/c1' },
      { controllers: ['pids'], path: '/shoal/c1' },
      { controllers: ['name=systemd'], path: '/user.slice/session-1.scope' },
    ]);
    expect(parseProcCgroup(V2_PROC)).toEqual([{ controllers: [], path: '/shoal/c1' }]);
  });

  it('finds a process on a pure v2 host in the one unified hierarchy', () => {
    expect(cgroupDirs(V2_PROC, V2_MOUNTS)).toEqual(new Map([['', '/sys/fs/cgroup/shoal/c1']]));
    expect(controllerDir(V2_MOUNTS, 'memory', '/shoal/c1')).toBe('/sys/fs/cgroup/shoal/c1');
    expect(controllerDir(V2_MOUNTS, 'pids', '/shoal/c1')).toBe('/sys/fs/cgroup/shoal/c1');
    expect(hierarchyMounts(V2_MOUNTS)).toEqual(['/sys/fs/cgroup']);
  });

  it('finds a process on a hybrid host in each v1 controller, and its own unified cgroup', () => {
    const dirs = cgroupDirs(HYBRID_PROC, HYBRID_MOUNTS);
    expect(dirs.get('memory')).toBe('/sys/fs/cgroup/memory/shoal/c1');
    expect(dirs.get('cpu')).toBe('/sys/fs/cgroup/cpu/shoal/c1');
    expect(dirs.get('pids')).toBe('/sys/fs/cgroup/pids/shoal/c1');
    expect(dirs.get('name=systemd')).toBe('/sys/fs/cgroup/systemd/shoal/c1');
    expect(dirs.get('')).toBe('/sys/fs/cgroup/unified/system.slice/shoald.service');
    expect(controllerDir(HYBRID_MOUNTS, 'memory', '/shoal/c1')).toBe('/sys/fs/cgroup/memory/shoal/c1');
    expect(hierarchyMounts(HYBRID_MOUNTS)).toEqual(
      ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'systemd', 'unified'].map((h) => `/sys/fs/cgroup/${h}`),
    );
  });

  it('finds a process on a v1 host with co-mounted controllers under each of their names', () => {
    const dirs = cgroupDirs(V1_PROC, V1_MOUNTS);
    expect(dirs.get('cpu')).toBe('/sys/fs/cgroup/cpu,cpuacct/shoal/c1');
    expect(dirs.get('cpuacct')).toBe('/sys/fs/cgroup/cpu,cpuacct/shoal/c1');
    expect(dirs.get('memory')).toBe('/sys/fs/cgroup/memory/shoal/c1');
    expect(dirs.has('')).toBe(false);
    expect(controllerDir(V1_MOUNTS, 'cpuacct', '/shoal/c1')).toBe('/sys/fs/cgroup/cpu,cpuacct/shoal/c1');
    expect(controllerDir(V1_MOUNTS, 'hugetlb', '/shoal/c1')).toBeNull();
  });

  it('maps paths through a mount of a sub-tree, and skips cgroups that mount does not show', () => {
    const mounts = `40 30 0:31 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
41 30 0:37 / /run/with\\040space rw - cgroup2 cgroup2 rw
`;
    expect(cgroupDirs('4:memory:/docker/abc/shoal/c1\n', mounts).get('memory')).toBe('/sys/fs/cgroup/memory/shoal/c1');
    expect(cgroupDirs('4:memory:/elsewhere/c1\n', mounts).has('memory')).toBe(false);
    expect(cgroupDirs('0::/x\n', mounts).get('')).toBe('/run/with space/x');
  });

  it('lists each hierarchy below /sys/fs/cgroup once', () => {
    const mounts = `${V2_MOUNTS}50 26 0:23 / /sys/fs/cgroup/again rw - cgroup2 cgroup2 rw
51 28 0:23 / /var/lib/x/rootfs/sys/fs/cgroup rw - cgroup2 cgroup2 rw
`;
    expect(hierarchyMounts(mounts)).toEqual(['/sys/fs/cgroup']);
  });

  it('finds this very process where the kernel says it is', async () => {
    const dirs = await processCgroupDirs(process.pid);
    expect(dirs.size).toBeGreaterThan(0);
    for (const dir of dirs.values()) expect(readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(process.pid));
  });
});

describe('cgroup limits', () => {
  const files = (entries: Record<string, string>) => (f: string) => {
    if (!(f in entries)) throw new Error(`no such file ${f}`);
    return `${entries[f]}\n`;
  };

  it.each<{ version: string; dirs: Map<string, string>; files: Record<string, string>; cpuShares: number | null }>([
    {
      version: 'v1',
      dirs: cgroupDirs(HYBRID_PROC, HYBRID_MOUNTS),
      files: {
        '/sys/fs/cgroup/memory/shoal/c1/memory.limit_in_bytes': '67108864',
        '/sys/fs/cgroup/cpu/shoal/c1/cpu.cfs_quota_us': '50000',
        '/sys/fs/cgroup/cpu/shoal/c1/cpu.cfs_period_us': '100000',
        '/sys/fs/cgroup/cpu/shoal/c1/cpu.shares': '512',
        '/sys/fs/cgroup/pids/shoal/c1/pids.max': '42',
      },
      cpuShares: 512,
    },
    {
      version: 'v2',
      dirs: cgroupDirs(V2_PROC, V2_MOUNTS),
      files: {
        '/sys/fs/cgroup/shoal/c1/memory.max': '67108864',
        '/sys/fs/cgroup/shoal/c1/cpu.max': '50000 100000',
        '/sys/fs/cgroup/shoal/c1/cpu.weight': '20',
        '/sys/fs/cgroup/shoal/c1/pids.max': '42',
      },
      cpuShares: null,
    },
  ])('reads $version files', ({ dirs, files: entries, cpuShares }) => {
    expect(readLimits(dirs, files(entries))).toEqual({ memoryBytes: 64 << 20, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, cpuShares, cpuWeight: 20, pids: 42, dirs });
  });

  it('reads "no limit" as null in both formats', () => {
    const v1 = readLimits(
      cgroupDirs(V1_PROC, V1_MOUNTS),
      files({
        '/sys/fs/cgroup/memory/shoal/c1/memory.limit_in_bytes': '9223372036854771712',
        '/sys/fs/cgroup/cpu,cpuacct/shoal/c1/cpu.cfs_quota_us': '-1',
        '/sys/fs/cgroup/cpu,cpuacct/shoal/c1/cpu.cfs_period_us': '100000',
        '/sys/fs/cgroup/cpu,cpuacct/shoal/c1/cpu.shares': '1024',
        '/sys/fs/cgroup/pids/shoal/c1/pids.max': 'max',
      }),
    );
    expect(v1).toMatchObject({ memoryBytes: null, cpuQuotaUs: null, pids: null, cpuShares: 1024, cpuWeight: 39 });
    const v2 = readLimits(
      cgroupDirs(V2_PROC, V2_MOUNTS),
      files({
        '/sys/fs/cgroup/shoal/c1/memory.max': 'max',
        '/sys/fs/cgroup/shoal/c1/cpu.max': 'max 100000',
        '/sys/fs/cgroup/shoal/c1/cpu.weight': '100',
        '/sys/fs/cgroup/shoal/c1/pids.max': 'max',
      }),
    );
    expect(v2).toMatchObject({ memoryBytes: null, cpuQuotaUs: null, cpuPeriodUs: 100_000, pids: null, cpuWeight: 100 });
  });

  it('converts shares to weight as runc does', () => {
    expect([2, 512, 1024, 262144].map(cpuWeightOfShares)).toEqual([1, 20, 39, 10000]);
  });

  it('says which controller a process has no cgroup for', () => {
    expect(() => readLimits(cgroupDirs('3:memory:/shoal/c1\n', V1_MOUNTS), () => '1')).toThrow('the process is in no cgroup with the cpu controller');
  });
});
