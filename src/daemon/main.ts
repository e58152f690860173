import * as os from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { createLogger } from '../common/logger';
import { parseBytes, parseDuration } from '../common/units';
import { DEFAULTS } from './config';
import { GC_MIN_AGE_MS } from '../images/store';
import { VERSION } from '../common/version';
import { Daemon } from './daemon';

// Shows as "shoald" in ps and /proc/<pid>/cmdline, which the pid-file check relies on.
process.title = 'shoald';

const port = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('must be a port number 1-65535');
  return n;
};
const positive = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
};

const registryHost = (v: string, prev: string[]) => {
  if (!/^(?:[a-zA-Z0-9.-]+|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/.test(v)) throw new InvalidArgumentError('must be host[:port], like registry.local:5000');
  return [...prev, v];
};

const percent = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 100) throw new InvalidArgumentError('must be a percentage 0-100');
  return n;
};

const duration = (v: string) => {
  try {
    return parseDuration(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

const program = new Command('shoald')
  .description('the shoal node daemon: runs tasks on this node and, on managers, the control plane')
  .version(VERSION)
  .option('--data-dir <dir>', 'where images, containers, logs and the etcd member live', DEFAULTS.dataDir)
  .option('--socket <path>', 'API socket for the CLI', DEFAULTS.socket)
  .option('--listen-addr <addr:port>', 'the cluster endpoint (TLS): joins, the dispatcher, manager calls and remote CLIs', DEFAULTS.listenAddr)
  .option('--hostname <name>', 'the hostname this node reports (default: the host’s)')
  .option('--etcd-client-port <port>', 'loopback port of the etcd member (managers)', port, DEFAULTS.etcdClientPort)
  .option('--etcd-peer-port <port>', 'raft peer port of the etcd member (managers)', port, DEFAULTS.etcdPeerPort)
  .option('--cgroup-parent <name>', 'cgroup directory that holds this node’s containers', DEFAULTS.cgroupParent)
  .option('--runc-root <dir>', 'runc state directory (tmpfs)', DEFAULTS.runcRoot)
  // Starts are CPU-bound in runc; three per core kept both cores busy best here (50 replicas on
  // 2 cores: 1.9 s at 6 in flight, 2.0 s at 4 and 8, 2.4 s at 3).
  .option('--start-concurrency <n>', 'container starts in flight at once', positive, Math.max(2, os.cpus().length * 3))
  .option('--insecure-registry <host:port>', 'pull from this registry over plain HTTP (repeatable)', registryHost, [] as string[])
  .option('--registry-ca <file>', 'PEM CA bundle trusted for HTTPS registries instead of the system’s')
  .option('--image-gc-high-percent <n>', 'delete unused images, least recently used first, when the disk holding the data dir is fuller than this (0 = never)', percent, 85)
  .option('--image-gc-max-size <size>', 'also delete them when the image store takes more than this, e.g. 20g')
  .option('--image-gc-min-age <duration>', 'an image loaded or pulled is not collected before a container has used it or this long has passed', duration, GC_MIN_AGE_MS)
  .option('--log-max-size <size>', 'start a task’s log file over past this size, keeping the last --log-max-files (0 = never)', DEFAULTS.logMaxSize)
  .option('--log-max-files <n>', 'files kept per task log, the live one included', positive, DEFAULTS.logMaxFiles)
  .option('--overlay-prefix <prefix>', 'starts the names of the overlay devices shoal makes: 1-5 lowercase letters or digits', DEFAULTS.overlayPrefix)
  .option('--log-level <level>', 'trace, debug, info, warn or error', process.env.SHOAL_LOG_LEVEL ?? 'info')
  .action(async (opts) => {
    if (process.getuid?.() !== 0) {
      process.stderr.write('shoald must run as root: it creates namespaces, cgroups and mounts\n');
      process.exit(1);
    }
    const log = createLogger(opts.logLevel);
    const daemon = new Daemon(
      {
        dataDir: opts.dataDir,
        socket: opts.socket,
        listenAddr: opts.listenAddr,
        hostname: opts.hostname,
        etcdClientPort: opts.etcdClientPort,
        etcdPeerPort: opts.etcdPeerPort,
        cgroupParent: opts.cgroupParent,
        runcRoot: opts.runcRoot,
        startConcurrency: opts.startConcurrency,
        insecureRegistries: opts.insecureRegistry,
        registryCaFile: opts.registryCa,
        imageGc: {
          highPercent: opts.imageGcHighPercent > 0 ? opts.imageGcHighPercent : undefined,
          maxBytes: opts.imageGcMaxSize !== undefined ? parseBytesOrExit(opts.imageGcMaxSize, '--image-gc-max-size') : undefined,
          minAgeMs: opts.imageGcMinAge,
        },
        logMaxBytes: parseBytesOrExit(opts.logMaxSize, '--log-max-size'),
        logMaxFiles: opts.logMaxFiles,
        overlayPrefix: opts.overlayPrefix,
      },
      log,
    );
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping');
      daemon.stop().then(
        () => process.exit(0),
        (err) => {
          log.error({ err }, 'stopping failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    try {
      await daemon.start();
    } catch (err) {
      log.fatal({ err }, `shoald could not start: ${(err as Error).message}`);
      process.exit(1);
    }
  });

function parseBytesOrExit(v: string, flag: string): number {
  try {
    return parseBytes(v, flag);
  } catch (err) {
    process.stderr.write(`shoald: ${(err as Error).message}\n`);
    process.exit(2);
  }
}

program.parseAsync(process.argv);
