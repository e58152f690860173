import * as path from 'node:path';
import type { GcPolicy } from '../images/store';

export interface DaemonConfig {
  dataDir: string;
  /** The local API socket for the CLI (root-only). */
  socket: string;
  /** ADDR:PORT of the cluster's TCP endpoint (TLS): joins, the dispatcher, manager calls and remote CLIs. */
  listenAddr: string;
  /** The hostname this node reports; the host's own by default. */
  hostname?: string;
  etcdClientPort: number;
  etcdPeerPort: number;
  /** cgroup directory under each controller that holds this node's containers. */
  cgroupParent: string;
  /** runc's state directory; must be on a tmpfs that does not outlive a reboot. */
  runcRoot: string;
  /** Container starts in flight at once. */
  startConcurrency: number;
  /** host[:port] of registries spoken to over plain HTTP; every other registry is HTTPS. */
  insecureRegistries?: string[];
  /** PEM CA bundle trusted for HTTPS registries instead of the system's. */
  registryCaFile?: string;
  /** Automatic image collection: when the store is over either mark, unused images go, LRU first. */
  imageGc?: GcPolicy;
  /** conmon starts a task's log file over past this many bytes (0: never). */
  logMaxBytes?: number;
  /** Files kept of each task's log, the live one included (see worker/runtime/log-rotation.ts). */
  logMaxFiles?: number;
  /** Starts the names of the node's overlay devices (bridges, VXLAN devices, container veths). */
  overlayPrefix?: string;
}

export const DEFAULTS = {
  dataDir: '/var/lib/shoal',
  socket: '/run/shoal/shoal.sock',
  listenAddr: '0.0.0.0:2377',
  etcdClientPort: 4379,
  etcdPeerPort: 4380,
  cgroupParent: 'shoal',
  runcRoot: '/run/shoal/runc',
  // what Docker's json-file driver is commonly given in production (max-size=10m, max-file=3)
  logMaxSize: '10m',
  logMaxFiles: 3,
  overlayPrefix: 'shoal',
};

export const paths = (c: DaemonConfig) => ({
  etcd: path.join(c.dataDir, 'etcd'),
  images: path.join(c.dataDir, 'images'),
  containers: path.join(c.dataDir, 'containers'),
  logs: path.join(c.dataDir, 'logs'),
  identity: path.join(c.dataDir, 'node.json'),
  pidFile: path.join(c.dataDir, 'shoald.pid'),
  // A directory of shoal's own: everything in it is swept as a task's namespace, so never a shared
  // one such as /run/netns (the parent of a runc root like /run/shoal-x). The mounts end with a
  // reboot; the empty files they leave are swept at start.
  netns: path.join(c.dataDir, 'netns'),
});
