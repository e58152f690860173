import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** An HTTP server on a free loopback port, for tests and benchmarks; subclasses answer in handle(). */
export abstract class LoopbackHttpServer {
  port = 0;
  protected readonly server = http.createServer((req, res) => this.handle(req, res));

  protected abstract handle(req: http.IncomingMessage, res: http.ServerResponse): void;

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}
