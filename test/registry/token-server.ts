import { execFileSync } from 'node:child_process';
import { createPrivateKey, createSign, randomBytes, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { LoopbackHttpServer } from '../helpers/http-server';

export interface TokenRequest {
  service: string | null;
  scopes: string[];
  /** The user whose Basic credentials came with it; '' without any, null when they were wrong. */
  user: string | null;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/**
 * A tiny Docker token server (the `auth: token:` scheme of registry:2) on loopback: checks Basic
 * credentials, and answers with an RS256 JWT, signed with a key whose self-signed certificate
 * (made here with openssl) is the registry's rootcertbundle. The JWT carries that certificate in
 * its x5c header, which is how the registry finds the key.
 */
export class TokenServer extends LoopbackHttpServer {
  readonly service = 'shoal-test-registry';
  readonly issuer = 'shoal-test-issuer';
  readonly requests: TokenRequest[] = [];
  private readonly key: string;
  private readonly certDer: Buffer;

  constructor(
    readonly dir: string,
    private readonly users: Record<string, string>,
  ) {
    super();
    fs.mkdirSync(dir, { recursive: true });
    const keyFile = path.join(dir, 'token.key');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', this.rootCertBundle,
      '-days', '2', '-subj', '/CN=shoal-test-token-issuer',
    ], { stdio: 'pipe' });
    this.key = fs.readFileSync(keyFile, 'utf8');
    this.certDer = new X509Certificate(fs.readFileSync(this.rootCertBundle)).raw;
  }

  get rootCertBundle(): string {
    return path.join(this.dir, 'token.crt');
  }

  get realm(): string {
    return `http://127.0.0.1:${this.port}/token`;
  }

  protected handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/token') return void res.writeHead(404).end();
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    let user: string | null = '';
    const m = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
    if (m) {
      const text = Buffer.from(m[1], 'base64').toString('utf8');
      const colon = text.indexOf(':');
      const name = text.slice(0, colon);
      user = colon > 0 && this.users[name] !== undefined && this.users[name] === text.slice(colon + 1) ? name : null;
    }
    this.requests.push({ service: url.searchParams.get('service'), scopes, user });
    if (user === null) {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      return void res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
    }
    // Anonymous callers get a token with no access (as Docker Hub does); users all they ask for.
    const access = user
      ? scopes.map((s) => {
          const [type, ...rest] = s.split(':');
          const actions = rest.pop()!.split(',');
          return { type, name: rest.join(':'), actions };
        })
      : [];
    const nowS = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [this.certDer.toString('base64')] };
    const claims = { iss: this.issuer, sub: user, aud: url.searchParams.get('service') ?? this.service, exp: nowS + 300, nbf: nowS - 10, iat: nowS, jti: randomBytes(8).toString('hex'), access };
    const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(signing).sign(createPrivateKey(this.key));
    const token = `${signing}.${b64url(sig)}`;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
  }
}
