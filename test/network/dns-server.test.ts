import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Question } from 'dns-packet';
import { DnsServer, type Upstream } from '../../src/network/dns-server';
import { quietLogger } from '../../src/common/logger';

// A server on 127.0.0.1 with two scopes (containers c1 and c2), forwarding to tiny upstream
// servers made here: all real sockets.

const bound = <T extends dgram.Socket | net.Server>(s: T): Promise<T> =>
  new Promise((resolve) => (s instanceof net.Server ? s.listen(0, '127.0.0.1', () => resolve(s)) : (s as dgram.Socket).bind(0, '127.0.0.1', () => resolve(s))));
const portOf = (s: dgram.Socket | net.Server) => (s.address() as net.AddressInfo).port;

/** An upstream that answers every A question with 192.0.2.1 (UDP and TCP on one port), or stays silent. */
async function upstream(silent = false): Promise<{ at: Upstream; asked: DecodedPacket[]; close: () => void }> {
  const asked: DecodedPacket[] = [];
  const answer = (msg: Buffer) => {
    const q = dnsPacket.decode(msg);
    return dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: q.questions,
      answers: [{ name: q.questions![0].name, type: 'A', ttl: 60, data: '192.0.2.1' }],
    });
  };
  const udp = await bound(dgram.createSocket('udp4'));
  udp.on('message', (msg, from) => {
    asked.push(dnsPacket.decode(msg));
    if (!silent) udp.send(answer(msg), from.port, from.address);
  });
  const tcp = net.createServer((conn) =>
    conn.on('data', (d) => {
      const msg = d.subarray(2, 2 + d.readUInt16BE(0));
      asked.push(dnsPacket.decode(msg));
      const reply = answer(msg);
      conn.end(Buffer.concat([Buffer.from([reply.length >> 8, reply.length & 0xff]), reply]));
    }),
  );
  // The TCP side on the UDP side's port, so one Upstream names both.
  await new Promise<void>((resolve) => tcp.listen(portOf(udp), '127.0.0.1', resolve));
  return { at: { address: '127.0.0.1', port: portOf(udp) }, asked, close: () => (udp.close(), tcp.close()) };
}

const query = (name: string, type: Question['type'] = 'A', id = 4242, extra: Partial<dnsPacket.Packet> = {}) =>
  dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }], ...extra });

/** Sends a message to the UDP listener and returns the reply (or undefined after a second). */
function askUdp(port: number, msg: Buffer): Promise<Buffer | undefined> {
  const s = dgram.createSocket('udp4');
  return new Promise<Buffer | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 1000);
    s.on('message', (reply) => {
      clearTimeout(timer);
      resolve(reply);
    });
    s.send(msg, port, '127.0.0.1');
  }).finally(() => s.close());
}

function askTcp(port: number, msg: Buffer): Promise<DecodedPacket> {
  const conn = net.connect({ host: '127.0.0.1', port });
  let got = Buffer.alloc(0);
  return new Promise<DecodedPacket>((resolve, reject) => {
    conn.on('error', reject);
    conn.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) resolve(dnsPacket.decode(got.subarray(2)));
    });
    conn.write(Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 0xff]), msg]));
  }).finally(() => conn.destroy());
}

/** An answer's address (what every answer here carries). */
const data = (a: Answer) => ('data' in a ? a.data : undefined);
const rcode = (p: DecodedPacket) => (p as unknown as { rcode: string }).rcode;

/** 60 addresses: more than fit in 512 bytes. */
const many = Array.from({ length: 60 }, (_, i) => `10.1.0.${i + 10}`);

function records(scope: string, q: Question): Answer[] | undefined {
  const a = (ips: string[]) => ips.map((data): Answer => ({ name: q.name, type: 'A', class: 'IN', ttl: 5, data }));
  if (q.name === 'api') return a(scope === 'c1' ? ['10.1.0.2'] : ['10.2.0.2']);
  if (q.name === 'tasks.big' && scope === 'c1') return a(many);
  return undefined;
}

describe('the DNS server', () => {
  const closers: (() => void)[] = [];
  let upstreams: Upstream[] = [];
  let c1: { udp: number; tcp: number };
  let c2: { udp: number; tcp: number };
  let server: DnsServer;

  async function listen(scope: string) {
    const udp = await bound(dgram.createSocket('udp4'));
    const tcp = await bound(net.createServer());
    closers.push(server.serve(scope, udp, tcp));
    return { udp: portOf(udp), tcp: portOf(tcp) };
  }

  beforeAll(async () => {
    server = new DnsServer({ resolve: records, upstreams: () => upstreams, timeoutMs: 300, log: quietLogger() });
    c1 = await listen('c1');
    c2 = await listen('c2');
  });

  afterEach(() => {
    upstreams = [];
  });

  afterAll(() => {
    for (const close of closers) close();
  });

  it('answers a name it knows with the answers for the listener’s scope, under the query’s id', async () => {
    const reply = dnsPacket.decode((await askUdp(c1.udp, query('api')))!);
    expect(reply).toMatchObject({ type: 'response', id: 4242, flag_aa: true, flag_rd: true, flag_ra: true, flag_tc: false });
    expect(rcode(reply)).toBe('NOERROR');
    expect(reply.questions).toEqual([{ name: 'api', type: 'A', class: 'IN' }]);
    expect(reply.answers).toEqual([{ name: 'api', type: 'A', class: 'IN', ttl: 5, flush: false, data: '10.1.0.2' }]);
    const other = dnsPacket.decode((await askUdp(c2.udp, query('api')))!);
    expect(other.answers!.map(data)).toEqual(['10.2.0.2']);
  });

  it('forwards any other name to the upstream and relays its answer under the query’s id', async () => {
    const up = await upstream();
    closers.push(up.close);
    upstreams = [up.at];
    const reply = dnsPacket.decode((await askUdp(c1.udp, query('example.com', 'A', 7)))!);
    expect(reply.id).toBe(7);
    expect(rcode(reply)).toBe('NOERROR');
    expect(reply.answers!.map((a) => [a.name, data(a)])).toEqual([['example.com', '192.0.2.1']]);
    expect(up.asked.map((q) => q.questions![0].name)).toEqual(['example.com']);
    // What the container names in its scope only is the upstream's too for another scope.
    expect(dnsPacket.decode((await askUdp(c2.udp, query('tasks.big')))!).answers!.map(data)).toEqual(['192.0.2.1']);
  });

  it('tries the next upstream when one does not answer in time', async () => {
    const [silent, up] = [await upstream(true), await upstream()];
    closers.push(silent.close, up.close);
    upstreams = [silent.at, up.at];
    const reply = dnsPacket.decode((await askUdp(c1.udp, query('example.org')))!);
    expect(reply.answers!.map(data)).toEqual(['192.0.2.1']);
    expect(silent.asked).toHaveLength(1);
    expect(up.asked).toHaveLength(1);
  });

  it('answers SERVFAIL when no upstream answers', async () => {
    const silent = await upstream(true);
    closers.push(silent.close);
    upstreams = [silent.at];
    const reply = dnsPacket.decode((await askUdp(c1.udp, query('example.net', 'A', 99)))!);
    expect(reply).toMatchObject({ type: 'response', id: 99, flag_aa: false });
    expect(rcode(reply)).toBe('SERVFAIL');
    expect(reply.questions).toEqual([{ name: 'example.net', type: 'A', class: 'IN' }]);
    expect(reply.answers).toEqual([]);
  });

  it('fits a UDP answer in 512 bytes with the TC flag, and gives it whole over TCP', async () => {
    const msg = await askUdp(c1.udp, query('tasks.big'));
    expect(msg!.length).toBeLessThanOrEqual(512);
    const udp = dnsPacket.decode(msg!);
    expect(udp.flag_tc).toBe(true);
    expect(udp.answers!.length).toBeGreaterThan(0);
    expect(udp.answers!.length).toBeLessThan(many.length);
    const tcp = await askTcp(c1.tcp, query('tasks.big'));
    expect(tcp.flag_tc).toBe(false);
    expect(tcp.answers!.map(data).sort()).toEqual([...many].sort());
  });

  it('gives a query with EDNS as much as it offers room for', async () => {
    const edns = query('tasks.big', 'A', 1, { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] });
    const reply = dnsPacket.decode((await askUdp(c1.udp, edns))!);
    expect(reply.flag_tc).toBe(false);
    expect(reply.answers).toHaveLength(many.length);
    expect(reply.additionals!.map((a) => a.type)).toEqual(['OPT']);
  });

  it('forwards over TCP what is asked over TCP', async () => {
    const up = await upstream();
    closers.push(up.close);
    upstreams = [up.at];
    const reply = await askTcp(c1.tcp, query('example.com', 'A', 12));
    expect(reply.id).toBe(12);
    expect(reply.answers!.map(data)).toEqual(['192.0.2.1']);
  });

  it('answers a malformed query FORMERR, and no reply at all', async () => {
    const garbage = Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]), Buffer.from([0xff, 0xff])]);
    const reply = dnsPacket.decode((await askUdp(c1.udp, garbage))!);
    expect(reply.id).toBe(0x1234);
    expect(rcode(reply)).toBe('FORMERR');
    const response = dnsPacket.encode({ type: 'response', id: 5, questions: [{ name: 'api', type: 'A' }] });
    expect(await askUdp(c1.udp, response)).toBeUndefined();
  });
});
