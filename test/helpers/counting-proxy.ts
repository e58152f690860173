import * as http from 'node:http';
import { LoopbackHttpServer } from './http-server';

/**
 * A plain-HTTP proxy in front of a registry that counts blob GETs by digest: proof of how many
 * times each blob was downloaded, whatever the store ends up holding.
 */
export class CountingProxy extends LoopbackHttpServer {
  readonly blobGets = new Map<string, number>();

  constructor(private readonly upstreamPort: number) {
    super();
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  protected handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const m = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '');
    if (m && req.method === 'GET') this.blobGets.set(m[1], (this.blobGets.get(m[1]) ?? 0) + 1);
    const up = http.request({ host: '127.0.0.1', port: this.upstreamPort, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  }
}
