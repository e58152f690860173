import type { RootMount } from './rootfs';
import { seccompFor } from './seccomp';
import type { ContainerConfig } from './types';
import type { ExecUser } from './user';

/** Docker's default capability set. */
export const DEFAULT_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Docker's masked paths (bind-mounted over with /dev/null or an empty read-only tmpfs). */
export const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

/** Docker's read-only paths. */
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const CPU_PERIOD = 100_000;

/** Files in the bundle dir that are bind-mounted into the container. */
export const ETC_FILES = ['hosts', 'hostname', 'resolv.conf'] as const;

export interface SpecInput {
  cfg: ContainerConfig;
  user: ExecUser;
  /** The overlay that makes the container's root (mounted first, over the empty <bundle>/rootfs). */
  root: RootMount;
  /** Absolute path of the bundle dir (holds hosts, hostname, resolv.conf). */
  bundle: string;
  /** Absolute cgroups path, "/<parent>/<id>", so it does not depend on the cgroup conmon runs in. */
  cgroupsPath: string;
}

/** The env with Docker's defaults: PATH if unset, HOME from passwd if unset, HOSTNAME. */
export function containerEnv(cfg: ContainerConfig, user: ExecUser): string[] {
  const keys = new Set(cfg.env.map((e) => e.split('=', 1)[0]));
  const env = [...cfg.env];
  if (!keys.has('PATH')) env.unshift(`PATH=${DEFAULT_PATH}`);
  if (!keys.has('HOSTNAME')) env.push(`HOSTNAME=${cfg.hostname}`);
  if (!keys.has('HOME')) env.push(`HOME=${user.home}`);
  return env;
}

/** Builds the OCI runtime spec (config.json) for one container, as Docker's defaults would. */
export function buildSpec({ cfg, user, root, bundle, cgroupsPath }: SpecInput): Record<string, unknown> {
  const resources: Record<string, unknown> = {
    devices: [{ allow: false, access: 'rwm' }],
  };
  if (cfg.memoryBytes > 0) resources.memory = { limit: cfg.memoryBytes };
  if (cfg.nanoCpus > 0) {
    resources.cpu = {
      quota: Math.max(1000, Math.round((cfg.nanoCpus * CPU_PERIOD) / 1e9)),
      period: CPU_PERIOD,
      shares: Math.max(2, Math.round((cfg.nanoCpus * 1024) / 1e9)),
    };
  }
  if (cfg.pids > 0) resources.pids = { limit: cfg.pids };

  const caps = [...DEFAULT_CAPS];
  const annotations: Record<string, string> = { ...(cfg.labels ?? {}) };
  const seccomp = seccompFor(cfg.seccompProfile ?? '', caps);

  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids.length ? { additionalGids: user.additionalGids } : {}) },
      args: cfg.args,
      env: containerEnv(cfg, user),
      cwd: cfg.cwd || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: false },
    hostname: cfg.hostname,
    mounts: [
      root,
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=67108864'] },
      ...ETC_FILES.map((f) => ({ destination: `/etc/${f}`, type: 'bind', source: `${bundle}/${f}`, options: ['rbind', 'rprivate'] })),
    ],
    annotations,
    linux: {
      cgroupsPath,
      resources,
      namespaces: [{ type: 'pid' }, { type: 'network', ...(cfg.netns ? { path: cfg.netns } : {}) }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      ...(seccomp ? { seccomp } : {}),
    },
  };
}

/** /etc/hosts: loopback names, and the hostname on the container's address (loopback without a network). */
export function hostsFile(hostname: string, ip = '127.0.1.1'): string {
  return [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
    `${ip}\t${hostname}`,
    '',
  ].join('\n');
}
