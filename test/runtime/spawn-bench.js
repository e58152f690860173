// Benchmark of container starts through a compiled Runtime (not a test; needs root):
//   node test/runtime/spawn-bench.js [DIST_DIR=dist] [RSS_MB=150]
// 50 containers created+started with concurrency 4, 5 rounds; prints the median wall time and this
// process's CPU time (user+system, children excluded). The process is padded to RSS_MB of resident
// memory, like a running shoald, since fork() cost grows with the parent's RSS.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const dist = path.resolve(process.argv[2] || 'dist');
const rssMb = Number(process.argv[3] || 150);
const { Runtime } = require(path.join(dist, 'src/worker/runtime/runtime.js'));
const N = 50;
const CONCURRENCY = 4;
const ROUNDS = 5;

function busybox(dir) {
  for (const d of ['bin', 'etc', 'tmp']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin/busybox'));
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  for (const a of ['sh', 'sleep']) fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  fs.writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  return dir;
}

/** utime+stime of a process in ms. */
function cpuOf(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

(async () => {
  const marker = `shoal-bench-${Math.random().toString(36).slice(2, 8)}`;
  const base = fs.mkdtempSync(path.join(os.tmpdir(), `${marker}-`));
  const layer = busybox(path.join(base, 'layer'));
  const rt = new Runtime({ root: path.join(base, 'root'), runcRoot: path.join(base, 'runc'), cgroupParent: marker });
  const ballast = [];
  while (process.memoryUsage().rss < rssMb * 1024 * 1024) ballast.push(Buffer.alloc(4 * 1024 * 1024, 1));
  let seq = 0;
  const rows = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const queue = Array.from({ length: N }, () => {
        const id = `${marker.replace(/-/g, '')}${String(seq++).padStart(5, '0')}`;
        return { id, hostname: 'b', args: ['sleep', '60'], env: [], cwd: '/', user: '', layers: [layer], memoryBytes: 0, nanoCpus: 0, pids: 0, logPath: path.join(base, 'logs', `${id}.log`) };
      });
      const spawner0 = rt.spawnerPid ? cpuOf(rt.spawnerPid) : 0;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          for (let c = queue.shift(); c; c = queue.shift()) {
            await rt.create(c);
            await rt.start(c.id);
          }
        }),
      );
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const spawnerMs = rt.spawnerPid ? cpuOf(rt.spawnerPid) - spawner0 : 0;
      const running = (await rt.list()).filter((s) => s.status === 'running').length;
      if (running !== N) throw new Error(`${running} of ${N} running`);
      rows.push({ ms, cpuMs: (cpu.user + cpu.system) / 1000, spawnerMs });
      await rt.removeAll();
    }
  } finally {
    await rt.removeAll();
    rt.close();
    fs.rmSync(base, { recursive: true, force: true });
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rss = Math.round(process.memoryUsage().rss / 1024 / 1024);
  console.log(
    `${N} containers, concurrency ${CONCURRENCY}, RSS ${rss} MB: median ${Math.round(med(rows.map((r) => r.ms)))} ms wall, ` +
      `${Math.round(med(rows.map((r) => r.cpuMs)))} ms CPU of this process, ${Math.round(med(rows.map((r) => r.spawnerMs)))} ms of the spawner ` +
      `(wall/cpu per round: ${rows.map((r) => `${Math.round(r.ms)}/${Math.round(r.cpuMs)}`).join(', ')})`,
  );
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
