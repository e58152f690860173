import * as http from 'node:http';
import * as https from 'node:https';
import type { IncomingMessage } from 'node:http';

export interface HttpRequest {
  method: 'GET' | 'HEAD';
  url: URL;
  headers: Record<string, string>;
  /** PEM CA bundle for HTTPS, instead of the system's. */
  ca?: string | Buffer;
  /** Gives up when no byte arrives for this long (connect, headers, or body). */
  idleMs: number;
  signal?: AbortSignal;
}

/**
 * One HTTP exchange with node:http(s), which (unlike Node 20's fetch) takes a custom CA
 * and lets the caller stream the body with backpressure. The body is not consumed here.
 */
export function request(req: HttpRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = req.url.protocol === 'https:' ? https : http;
    const r = mod.request(
      req.url,
      { method: req.method, headers: req.headers, ca: req.ca, signal: req.signal, timeout: req.idleMs },
      (res) => {
        res.setTimeout?.(req.idleMs);
        resolve(res);
      },
    );
    r.on('timeout', () => r.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    r.on('error', reject);
    r.end();
  });
}

/** Reads a whole (small) body, refusing more than `max` bytes. */
export async function readBody(res: IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) {
      res.destroy();
      throw Object.assign(new Error(`response is larger than ${max} bytes`), { code: 'ETOOBIG' });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** `Bearer realm="…",service="…",scope="…"` → scheme and parameters. */
export function parseChallenge(header: string | undefined): { scheme: string; params: Record<string, string> } | null {
  if (!header) return null;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return null;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/g;
  for (let p = re.exec(m[2]); p; p = re.exec(m[2])) params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  return { scheme: m[1].toLowerCase(), params };
}
