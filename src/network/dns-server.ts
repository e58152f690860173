/**
 * A DNS server for containers: it answers what the resolve function knows for the asking
 * container (its scope) and forwards every other question to upstream resolvers, the host's.
 * UDP and TCP, each listener bound to one scope, so an answer never depends on a source address
 * a container could forge.
 *
 * Forwarding tries the upstreams in turn, each for timeoutMs, with a fresh socket and query id
 * each time (nothing from the container chooses what the upstream's answer must match); when
 * none answers, the container gets SERVFAIL at once instead of waiting out its own timeout.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { randomInt } from 'node:crypto';
import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, OptAnswer, Packet, Question } from 'dns-packet';
import type { Logger } from '../common/logger';

/** A resolver to forward to. */
export interface Upstream {
  address: string;
  port: number;
}

export interface DnsServerOptions {
  /** The answers to a question from `scope`; undefined forwards it upstream. */
  resolve(scope: string, q: Question): Answer[] | undefined;
  /** The resolvers to forward to, tried in order. */
  upstreams(): Upstream[];
  /** How long each upstream has to answer; default 2 s. */
  timeoutMs?: number;
  log: Logger;
}

export const DNS_PORT = 53;
const DEFAULT_TIMEOUT_MS = 2000;
/** A UDP answer to a query without EDNS fits in this (RFC 1035). */
const UDP_LIMIT = 512;
/** The largest UDP answer sent, whatever a query's EDNS offers. */
const EDNS_LIMIT = 4096;
const TCP_LIMIT = 65535;
/** A TCP connection idle this long is closed. */
const TCP_IDLE_MS = 10_000;

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NOTIMP: 4 } as const;

/** Two-byte length, then the message: DNS over TCP. */
const frame = (msg: Buffer) => Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 0xff]), msg]);

/** Reads length-framed messages off a TCP stream, each whole, in order. */
function framer(each: (msg: Buffer) => void): (chunk: Buffer) => void {
  let pending = Buffer.alloc(0);
  return (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
      const length = pending.readUInt16BE(0);
      each(pending.subarray(2, 2 + length));
      pending = pending.subarray(2 + length);
    }
  };
}

/** Round robin: the same addresses, from a random one on, so clients that take the first spread out. */
function rotate(answers: Answer[]): Answer[] {
  if (answers.length < 2) return answers;
  const k = randomInt(answers.length);
  return [...answers.slice(k), ...answers.slice(0, k)];
}

const withId = (msg: Buffer, id: number) => {
  const copy = Buffer.from(msg);
  copy.writeUInt16BE(id, 0);
  return copy;
};

export class DnsServer {
  private upstreamsFailing = false;

  constructor(private readonly opts: DnsServerOptions) {}

  /** Answers queries from one scope on these listeners; the function returned stops it and closes them. */
  serve(scope: string, udp: dgram.Socket, tcp: net.Server): () => void {
    const log = this.opts.log.child({ scope });
    udp.on('message', (msg, from) => {
      this.respond(scope, msg, false)
        .then((reply) => reply && udp.send(reply, from.port, from.address))
        .catch((err) => log.warn({ err }, 'answering a DNS query failed'));
    });
    udp.on('error', (err) => log.warn({ err }, 'resolver socket failed'));
    const connections = new Set<net.Socket>();
    tcp.on('connection', (conn) => {
      connections.add(conn);
      conn.on('close', () => connections.delete(conn));
      conn.on('error', () => conn.destroy());
      conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
      conn.on(
        'data',
        framer((msg) => {
          this.respond(scope, msg, true)
            .then((reply) => reply && !conn.destroyed && conn.write(frame(reply)))
            .catch((err) => log.warn({ err }, 'answering a DNS query failed'));
        }),
      );
    });
    tcp.on('error', (err) => log.warn({ err }, 'resolver socket failed'));
    return () => {
      udp.close();
      tcp.close();
      for (const c of connections) c.destroy();
    };
  }

  /** The reply to one message, or undefined for one that deserves none (not a query). */
  private async respond(scope: string, msg: Buffer, tcp: boolean): Promise<Buffer | undefined> {
    let query: DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      // Malformed: FORMERR if there is a header to answer, else nothing.
      return msg.length >= 12 && !(msg[2] & 0x80) ? dnsPacket.encode({ type: 'response', id: msg.readUInt16BE(0), flags: RCODE.FORMERR }) : undefined;
    }
    if (query.type !== 'query') return undefined;
    if ((query as { opcode?: string }).opcode !== 'QUERY') return this.reply(query, RCODE.NOTIMP, [], tcp);
    if (query.questions?.length !== 1) return this.reply(query, RCODE.FORMERR, [], tcp);
    const answers = this.opts.resolve(scope, query.questions[0]);
    if (answers) return this.reply(query, RCODE.NOERROR, rotate(answers), tcp, true);
    const forwarded = await this.forward(msg, query.id ?? 0, tcp);
    return forwarded ?? this.reply(query, RCODE.SERVFAIL, [], tcp);
  }

  /**
   * An answer of ours to the query, as many answers as fit the client's limit (512 bytes over UDP
   * without EDNS) and the TC flag when some did not, so a client asks again over TCP.
   */
  private reply(query: DecodedPacket, rcode: number, answers: Answer[], tcp: boolean, authoritative = false): Buffer {
    const opt = query.additionals?.find((a): a is OptAnswer => a.type === 'OPT');
    const limit = tcp ? TCP_LIMIT : opt ? Math.min(Math.max(opt.udpPayloadSize, UDP_LIMIT), EDNS_LIMIT) : UDP_LIMIT;
    let flags = rcode | dnsPacket.RECURSION_AVAILABLE | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) | (authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : 0);
    const packet: Packet = {
      type: 'response',
      id: query.id,
      flags,
      questions: query.questions,
      answers: [...answers],
      additionals: opt ? [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_LIMIT, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
    };
    while (dnsPacket.encodingLength(packet) > limit && packet.answers!.length) {
      packet.answers!.pop();
      flags |= dnsPacket.TRUNCATED_RESPONSE;
    }
    return dnsPacket.encode({ ...packet, flags });
  }

  /** The first upstream's reply, under the query's own id; undefined when none replied. */
  private async forward(msg: Buffer, id: number, tcp: boolean): Promise<Buffer | undefined> {
    const upstreams = this.opts.upstreams();
    const timeoutMs = this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const errors: string[] = [];
    for (const upstream of upstreams) {
      try {
        const reply = await (tcp ? exchangeTcp : exchangeUdp)(upstream, msg, timeoutMs);
        if (this.upstreamsFailing) this.opts.log.info({ upstream }, 'the upstream resolvers answer again');
        this.upstreamsFailing = false;
        return withId(reply, id);
      } catch (err) {
        errors.push(`${upstream.address}:${upstream.port}: ${(err as Error).message}`);
      }
    }
    if (!this.upstreamsFailing) this.opts.log.warn({ upstreams, errors }, 'no upstream resolver answered; containers get SERVFAIL for names outside the cluster');
    this.upstreamsFailing = true;
    return undefined;
  }
}

/** One query to one resolver over UDP, under an id of its own, answered from that resolver only. */
function exchangeUdp(upstream: Upstream, msg: Buffer, timeoutMs: number): Promise<Buffer> {
  const id = randomInt(0x10000);
  const socket = dgram.createSocket(net.isIPv6(upstream.address) ? 'udp6' : 'udp4');
  return new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', reject);
    socket.on('message', (reply, from) => {
      if (from.port !== upstream.port || from.address !== upstream.address.replace(/%.*/, '') || reply.length < 12 || reply.readUInt16BE(0) !== id) return;
      clearTimeout(timer);
      resolve(reply);
    });
    socket.send(withId(msg, id), upstream.port, upstream.address, (err) => {
      if (err) {
        clearTimeout(timer);
        reject(err);
      }
    });
  }).finally(() => socket.close());
}

/** One query to one resolver over TCP. */
function exchangeTcp(upstream: Upstream, msg: Buffer, timeoutMs: number): Promise<Buffer> {
  const conn = net.connect({ host: upstream.address, port: upstream.port });
  return new Promise<Buffer>((resolve, reject) => {
    conn.setTimeout(timeoutMs, () => reject(new Error(`no answer within ${timeoutMs} ms`)));
    conn.on('error', reject);
    conn.on('close', () => reject(new Error('closed before it answered')));
    conn.on('data', framer(resolve));
    conn.write(frame(msg));
  }).finally(() => conn.destroy());
}
