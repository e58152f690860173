import { execFile } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/network/command';
import { quietLogger } from '../../src/common/logger';
import { ContainerDns } from '../../src/worker/container-dns';
import type { NodeNetworks__Output } from '../../src/gen/shoal/v1/NodeNetworks';

// The node's resolver served into a real network namespace, asked with busybox nslookup at
// 127.0.0.11:53 from inside it, as a container asks. The host resolv.conf given to it names a
// nameserver made here, on port 53 of a loopback address of its own (resolv.conf names no port).

const name = `sdns${Math.random().toString(36).slice(2, 8)}`;
const netns = `/run/netns/${name}`;
const upstreamAddress = `127.77.${Math.floor(Math.random() * 256)}.${1 + Math.floor(Math.random() * 254)}`;
let dir: string;
let dns: ContainerDns;
let upstream: dgram.Socket;

const state = (endpoints: string[]): NodeNetworks__Output => ({
  networks: [],
  ingress: null,
  published: [],
  peers: [],
  attachments: [{ id: 't1', version: 1, networks: [{ network_id: 'n1', address: '10.5.0.9/24' }] }],
  services: [
    { service_id: 's1', network_id: 'n1', vip: '10.5.0.2', endpoints, service_name: 'api' },
    { service_id: 's2', network_id: 'n2', vip: '10.6.0.2', endpoints: [], service_name: 'hidden' },
  ],
  task_names: [{ network_id: 'n1', name: 'api.1.abc', ip: '10.5.0.3' }],
});

/**
 * `nslookup -type=a NAME 127.0.0.11` inside the namespace: the addresses it printed, else its
 * output. Not spawnSync: the server answering it runs in this process.
 */
function lookup(host: string): Promise<string[]> {
  return new Promise((resolve) => {
    execFile('nsenter', [`--net=${netns}`, 'busybox', 'nslookup', '-type=a', host, '127.0.0.11'], { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      const answers = [...stdout.matchAll(/^Address: (\S+)$/gm)].map((m) => m[1]).sort();
      resolve(!err && answers.length ? answers : [stdout.trim() || stderr.trim()]);
    });
  });
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-dns-'));
  await run('ip', ['netns', 'add', name]);
  await run('ip', ['link', 'set', 'lo', 'up'], { netns });
  // The host's nameserver: it knows one name, and says NXDOMAIN for the rest.
  upstream = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    upstream.once('error', reject);
    upstream.bind(53, upstreamAddress, resolve);
  });
  const dnsPacket = await import('dns-packet');
  upstream.on('message', (msg, from) => {
    const q = dnsPacket.decode(msg);
    const known = q.questions![0].name === 'outside.example';
    const reply = dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags: known ? 0 : 3,
      questions: q.questions,
      answers: known && q.questions![0].type === 'A' ? [{ name: 'outside.example', type: 'A', ttl: 60, data: '192.0.2.7' }] : [],
    });
    upstream.send(reply, from.port, from.address);
  });
  fs.writeFileSync(path.join(dir, 'resolv.conf'), `nameserver ${upstreamAddress}\nsearch corp.example\n`);
  dns = new ContainerDns({ log: quietLogger(), hostResolvConf: path.join(dir, 'resolv.conf'), timeoutMs: 500 });
  dns.setState(state(['10.5.0.3', '10.5.0.4']));
}, 60_000);

afterAll(async () => {
  await dns?.stopAll();
  upstream?.close();
  await run('ip', ['netns', 'del', name]).catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the resolver in a container’s namespace', { timeout: 60_000 }, () => {
  it('answers at 127.0.0.11:53 a service’s VIP, its running tasks and a task’s name', async () => {
    await dns.serve('t1', netns);
    expect(await lookup('api')).toEqual(['10.5.0.2']);
    expect(await lookup('tasks.api')).toEqual(['10.5.0.3', '10.5.0.4']);
    expect(await lookup('api.1.abc')).toEqual(['10.5.0.3']);
  });

  it('forwards other names to the host’s nameservers, and not the names of networks the container is not on', async () => {
    expect(await lookup('outside.example')).toEqual(['192.0.2.7']);
    expect(await lookup('hidden')).toEqual([expect.stringContaining("can't find hidden: NXDOMAIN")]);
  });

  it('follows each new state without opening anything again', async () => {
    dns.setState(state(['10.5.0.4']));
    expect(await lookup('tasks.api')).toEqual(['10.5.0.4']);
    await dns.serve('t1', netns);
    expect(await lookup('api')).toEqual(['10.5.0.2']);
  });

  it('leaves port 53 free for the container’s own server', async () => {
    const script = "const s=require('node:dgram').createSocket('udp4');s.on('error',e=>{console.error(e.message);process.exit(1)});s.bind(53,()=>process.exit(0))";
    await expect(run(process.execPath, ['-e', script], { netns })).resolves.toBe('');
  });

  it('gives the container a resolv.conf that names it and keeps the host’s search domains', () => {
    expect(dns.resolvConf()).toBe('nameserver 127.0.0.11\nsearch corp.example\noptions ndots:0\n');
  });

  it('closes its sockets in the namespace when stopped', async () => {
    await dns.stop('t1');
    const listening = await run('ss', ['-Hlutn'], { netns });
    expect(listening.trim()).toBe('');
    expect(await lookup('api')).toEqual([expect.stringMatching(/timed out|can't find/)]);
  });
});
