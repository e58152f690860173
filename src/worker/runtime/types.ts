import type { Logger } from '../../common/logger';

/** Everything needed to run one container. */
export interface ContainerConfig {
  /** Container id (the task id). Letters, digits, '_' and '-', at most 64 characters. */
  id: string;
  hostname: string;
  /** Final argv, non-empty. */
  args: string[];
  /** KEY=VALUE. PATH and HOME get Docker's defaults when absent. */
  env: string[];
  /** Working directory inside the container; "" means "/". */
  cwd: string;
  /** "" (root), "uid", "uid:gid", "name" or "name:group", resolved against the image's /etc/passwd and /etc/group. */
  user: string;
  /** Unpacked image layer directories, LOWEST FIRST. */
  layers: string[];
  /** 0 = no limit. */
  memoryBytes: number;
  /** 0 = no limit; 500_000_000 = half a CPU. */
  nanoCpus: number;
  /** 0 = no limit. */
  pids: number;
  /** conmon k8s-file log (survives the container and the daemon). */
  logPath: string;
  /** Put into the OCI annotations. */
  labels?: Record<string, string>;
  /** "" or absent: the default seccomp profile; "unconfined": none; else a profile in JSON (see seccomp.ts). */
  seccompProfile?: string;
  /** A network namespace to join (a bound file, see worker/container-networks.ts); absent: a new one with loopback only. */
  netns?: string;
  /** Its address on its first network, which its hostname resolves to in /etc/hosts. */
  ip?: string;
  /** Its /etc/resolv.conf; absent: a copy of the host's. */
  resolvConf?: string;
}

export type ContainerStatus = 'creating' | 'created' | 'running' | 'stopped' | 'unknown';

export interface ContainerState {
  id: string;
  status: ContainerStatus;
  /** Host pid of the container's init process; 0 when not running. */
  pid: number;
  /** Set once conmon has written the exit file. */
  exitCode: number | null;
}

/** How a command run inside a running container (exec) ended. */
export interface ExecOutcome {
  /** Its exit status; 137 when it was killed for running past its time. */
  exitCode: number;
  /** What it wrote (stdout, then stderr), or runc's error when it could not be run. */
  output: string;
  timedOut: boolean;
}

export interface RuntimeOptions {
  /** Bundles, overlay upper dirs and exit files live here, e.g. /var/lib/shoal/containers. */
  root: string;
  /** runc's --root, e.g. /run/shoal/runc. */
  runcRoot: string;
  /** Cgroup parent: containers go to /sys/fs/cgroup/<controller>/<cgroupParent>/<id>. */
  cgroupParent: string;
  /** conmon --log-size-max in bytes; unset or 0 = unlimited. */
  logSizeMax?: number;
  /** With logSizeMax, how many files of a log to keep, the live one included (default 1: conmon starts it over). */
  logMaxFiles?: number;
  log?: Logger;
  /** Paths of the binaries; default /usr/sbin/runc and /usr/bin/conmon. */
  runcPath?: string;
  conmonPath?: string;
}
