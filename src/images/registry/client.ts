import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { status } from '@grpc/grpc-js';
import { invalidArgument, notFound, ShoalError, unavailable } from '../../common/errors';
import type { ImageReference } from '../reference';
import { parseChallenge, readBody, request } from './http';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
};
const ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(', ');
const INDEXES = new Set([MEDIA.ociIndex, MEDIA.dockerList]);
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const MAX_MANIFEST = 4 << 20;
const MAX_REDIRECTS = 5;

const PLATFORM_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' };
export const OUR_ARCH = PLATFORM_ARCH[process.arch] ?? process.arch;

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** host[:port] of registries spoken to over plain HTTP; every other registry is HTTPS. */
  insecureRegistries?: Iterable<string>;
  /** PEM CA bundle trusted for HTTPS registries instead of the system's. */
  ca?: string | Buffer;
  /** Credentials for a registry host[:port], if any. */
  credentials?: (registry: string) => RegistryCredentials | undefined;
  /** A request gives up when the registry is silent for this long. */
  idleMs?: number;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export interface Manifest {
  /** sha256 of `bytes`, verified. */
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

/** What a reference resolves to: the image manifest for this platform, and the digest to pin. */
export interface ResolvedManifest {
  /** The digest the reference names: an index (multi-platform) or a manifest. What pinning stores. */
  digest: string;
  /** The image manifest for linux/<our arch>; the same as the above for a single-platform image. */
  manifest: Manifest;
  config: Descriptor;
  layers: Descriptor[];
}

interface AuthState {
  /** `Bearer <token>` or `Basic <…>`; never logged or put in an error. */
  header?: string;
  expires?: number;
}

/**
 * A client of the OCI Distribution API v2: manifests by tag or digest, blobs by digest,
 * every byte checked against its digest, bearer-token and basic auth.
 */
export class RegistryClient {
  private readonly insecure: Set<string>;
  private readonly idleMs: number;
  /** registry + scope → the Authorization header that worked. */
  private readonly auth = new Map<string, AuthState>();

  constructor(private readonly opts: RegistryOptions = {}) {
    this.insecure = new Set(opts.insecureRegistries ?? []);
    this.idleMs = opts.idleMs ?? 30_000;
  }

  isInsecure(registry: string): boolean {
    return this.insecure.has(registry);
  }

  /** The manifest or index `reference` (a tag or a digest) names, verified. */
  async getManifest(ref: ImageReference, reference: string): Promise<Manifest> {
    const what = `manifest ${ref.name}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`;
    const res = await this.get(ref, `/v2/${ref.repository}/manifests/${reference}`, { Accept: ACCEPT }, what);
    let bytes: Buffer;
    try {
      bytes = await readBody(res, MAX_MANIFEST);
    } catch (err) {
      throw this.networkError(ref.registry, err, what);
    }
    const digest = sha256(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw dataLoss(`${what} from registry ${ref.registry} does not match its digest (got ${digest})`);
    }
    const header = res.headers['docker-content-digest'];
    if (typeof header === 'string' && DIGEST.test(header) && header !== digest) {
      throw dataLoss(`${what} from registry ${ref.registry} does not match the digest the registry gave (${header})`);
    }
    let mediaType = String(res.headers['content-type'] ?? '').split(';')[0].trim();
    const json = parseJson(bytes, what) as { mediaType?: string };
    if (typeof json.mediaType === 'string') mediaType = json.mediaType;
    return { digest, mediaType, bytes };
  }

  /** Resolves a tag or digest to this platform's image manifest, its config and layers. */
  async resolve(ref: ImageReference): Promise<ResolvedManifest> {
    const top = await this.getManifest(ref, ref.digest ?? ref.tag ?? 'latest');
    let manifest = top;
    for (let depth = 0; INDEXES.has(manifest.mediaType); depth++) {
      if (depth > 3) throw invalidArgument(`image index ${top.digest} of ${ref.name} nests too deeply`);
      const index = parseJson(manifest.bytes, `index ${manifest.digest}`) as { manifests?: Descriptor[] };
      const entries = Array.isArray(index.manifests) ? index.manifests : [];
      const ours = entries.find((e) => e.platform?.os === 'linux' && e.platform.architecture === OUR_ARCH);
      if (!ours) {
        const have = entries.map((e) => `${e.platform?.os ?? '?'}/${e.platform?.architecture ?? '?'}`).join(', ');
        throw notFound(`image ${ref.name} has no variant for linux/${OUR_ARCH} (it has ${have || 'none'})`);
      }
      checkDescriptor(ours, `index ${manifest.digest}`);
      manifest = await this.getManifest(ref, ours.digest);
    }
    if (manifest.mediaType !== MEDIA.ociManifest && manifest.mediaType !== MEDIA.dockerManifest) {
      throw invalidArgument(`${ref.name} is a "${manifest.mediaType || 'unknown'}" manifest; only OCI and Docker v2 schema 2 images are supported`);
    }
    const m = parseJson(manifest.bytes, `manifest ${manifest.digest}`) as { config?: Descriptor; layers?: Descriptor[] };
    if (!m.config || !Array.isArray(m.layers)) throw invalidArgument(`manifest ${manifest.digest} of ${ref.name} has no config or layers`);
    checkDescriptor(m.config, `manifest ${manifest.digest}`);
    for (const l of m.layers) checkDescriptor(l, `manifest ${manifest.digest}`);
    return { digest: top.digest, manifest, config: m.config, layers: m.layers };
  }

  /** The digest a tag stands for now (an index's when multi-platform), for pinning. */
  async resolveDigest(ref: ImageReference): Promise<string> {
    return (await this.getManifest(ref, ref.digest ?? ref.tag ?? 'latest')).digest;
  }

  /**
   * Streams the blob `desc` names into `dest`, hashing on the way. If the bytes do not match
   * the digest and size, or the transfer breaks, `dest` is removed and the error thrown.
   */
  async fetchBlob(ref: ImageReference, desc: Descriptor, dest: string): Promise<void> {
    const what = `blob ${desc.digest} of ${ref.name}`;
    try {
      const res = await this.get(ref, `/v2/${ref.repository}/blobs/${desc.digest}`, {}, what);
      const hash = createHash('sha256');
      let size = 0;
      const verify = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          size += chunk.length;
          // More than the manifest says is refused at once, not after downloading all of it.
          if (size > desc.size) return cb(dataLoss(`${what} from registry ${ref.registry} is larger than the ${desc.size} bytes its manifest says`));
          hash.update(chunk);
          cb(null, chunk);
        },
        flush(cb) {
          // A body cut short ends the response early without an error on some paths.
          if (!res.complete) return cb(Object.assign(new Error('the connection closed mid-download'), { code: 'ECONNRESET' }));
          cb();
        },
      });
      try {
        await pipeline(res, verify, createWriteStream(dest, { mode: 0o600, flush: true }));
      } catch (err) {
        if (err instanceof ShoalError) throw err;
        const code = (err as NodeJS.ErrnoException).code;
        if (code && /^E(NOSPC|NOENT|ACCES|ROFS|IO|DQUOT)$/.test(code)) throw err;
        throw this.networkError(ref.registry, err, what);
      }
      if (size !== desc.size) {
        throw dataLoss(`${what} from registry ${ref.registry} is ${size} bytes, not the ${desc.size} bytes its manifest says`);
      }
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== desc.digest) throw dataLoss(`${what} from registry ${ref.registry} does not match its digest (got ${got})`);
    } catch (err) {
      await rm(dest, { force: true });
      throw err;
    }
  }

  /**
   * Checks credentials against `registry` as `docker login` does: GET /v2/, and on a challenge
   * the basic auth or a token (no scope) with them. Resolves when they are accepted.
   */
  async checkLogin(registry: string): Promise<void> {
    const base = this.baseUrl(registry);
    const url = new URL('/v2/', base);
    const what = 'a login';
    const creds = this.opts.credentials?.(registry);
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    const send = async (u: URL, auth?: string) => {
      try {
        return await request({ method: 'GET', url: u, headers: { 'User-Agent': 'shoal', ...(auth ? { Authorization: auth } : {}) }, ca: this.opts.ca, idleMs: this.idleMs });
      } catch (err) {
        throw this.networkError(registry, err, what);
      }
    };
    const refused = () =>
      new ShoalError(status.UNAUTHENTICATED, `registry ${registry} refused the login: unauthorized; the username or password is wrong`);
    let res = await send(url);
    res.resume();
    if (res.statusCode === 200) return;
    if (res.statusCode !== 401) throw unavailable(`registry ${registry} answered HTTP ${res.statusCode} to /v2/; is it an OCI registry?`);
    const challenge = parseChallenge(String(res.headers['www-authenticate'] ?? ''));
    if (challenge?.scheme === 'bearer' && challenge.params.realm) {
      let realm: URL;
      try {
        realm = new URL(challenge.params.realm);
      } catch {
        throw unavailable(`registry ${registry} sent an auth challenge with an invalid realm`);
      }
      if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && this.insecure.has(registry))) {
        throw unavailable(`registry ${registry} wants credentials sent to a plain-HTTP token server, which is refused`);
      }
      if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
      const t = await send(realm, basic);
      t.resume();
      if (t.statusCode === 401 || t.statusCode === 403) throw refused();
      if ((t.statusCode ?? 0) < 200 || (t.statusCode ?? 0) >= 300) throw unavailable(`token server of registry ${registry} answered HTTP ${t.statusCode}`);
      return;
    }
    res = await send(url, basic);
    res.resume();
    if (res.statusCode === 200) return;
    if (res.statusCode === 401 || res.statusCode === 403) throw refused();
    throw unavailable(`registry ${registry} answered HTTP ${res.statusCode} to /v2/`);
  }

  /** A GET that follows redirects and answers auth challenges; returns a 2xx response, body unread. */
  private async get(ref: ImageReference, path: string, headers: Record<string, string>, what: string): Promise<IncomingMessage> {
    const base = this.baseUrl(ref.registry);
    const scope = `repository:${ref.repository}:pull`;
    const key = `${ref.registry}|${scope}`;
    let url = new URL(path, base);
    let retriedAuth = false;
    for (let hop = 0; hop <= MAX_REDIRECTS; ) {
      const state = this.auth.get(key);
      const sameOrigin = url.origin === base.origin;
      const h: Record<string, string> = { 'User-Agent': 'shoal', ...headers };
      if (sameOrigin && state?.header && (!state.expires || state.expires > Date.now())) h.Authorization = state.header;
      let res: IncomingMessage;
      try {
        res = await request({ method: 'GET', url, headers: h, ca: this.opts.ca, idleMs: this.idleMs });
      } catch (err) {
        throw this.networkError(ref.registry, err, what);
      }
      const code = res.statusCode ?? 0;
      if (code >= 200 && code < 300) return res;
      if (code >= 300 && code < 400 && res.headers.location) {
        res.resume();
        url = new URL(res.headers.location, url);
        if (url.protocol !== 'https:' && !(url.protocol === 'http:' && this.insecure.has(url.host))) {
          throw unavailable(`registry ${ref.registry} redirected ${what} to a plain-HTTP address, which is refused`);
        }
        hop++;
        continue;
      }
      if (code === 401 && sameOrigin && !retriedAuth) {
        retriedAuth = true;
        const challenge = parseChallenge(String(res.headers['www-authenticate'] ?? ''));
        res.resume();
        if (challenge) {
          await this.authenticate(ref, challenge, scope, key);
          if (this.auth.get(key)?.header) continue;
        }
        throw this.unauthorized(ref, what, '');
      }
      const reason = await registryReason(res);
      if (code === 401) throw this.unauthorized(ref, what, reason);
      // UNAUTHENTICATED, not PERMISSION_DENIED: the CLI reads that one as "cannot use the daemon's socket".
      if (code === 403) throw new ShoalError(status.UNAUTHENTICATED, `registry ${ref.registry} denied access to ${what}${reason}`);
      if (code === 404) throw notFound(`${what} not found in registry ${ref.registry}${reason}`);
      if (code === 429) throw unavailable(`registry ${ref.registry} is rate-limiting pulls of ${what}${reason}`);
      throw unavailable(`registry ${ref.registry} answered HTTP ${code} for ${what}${reason}`);
    }
    throw unavailable(`registry ${ref.registry} redirected ${what} more than ${MAX_REDIRECTS} times`);
  }

  private async authenticate(
    ref: ImageReference,
    challenge: { scheme: string; params: Record<string, string> },
    scope: string,
    key: string,
  ): Promise<void> {
    const creds = this.opts.credentials?.(ref.registry);
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    if (challenge.scheme === 'basic') {
      if (basic) this.auth.set(key, { header: basic });
      return;
    }
    if (challenge.scheme !== 'bearer' || !challenge.params.realm) return;
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm);
    } catch {
      throw unavailable(`registry ${ref.registry} sent an auth challenge with an invalid realm`);
    }
    if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && this.insecure.has(ref.registry))) {
      throw unavailable(`registry ${ref.registry} wants credentials sent to a plain-HTTP token server, which is refused`);
    }
    if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
    realm.searchParams.set('scope', challenge.params.scope || scope);
    const what = `a token for ${ref.name}`;
    let res: IncomingMessage;
    try {
      res = await request({ method: 'GET', url: realm, headers: { 'User-Agent': 'shoal', ...(basic ? { Authorization: basic } : {}) }, ca: this.opts.ca, idleMs: this.idleMs });
    } catch (err) {
      throw this.networkError(`${ref.registry} (token server ${realm.host})`, err, what);
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      res.resume();
      throw this.unauthorized(ref, `${ref.name}`, '');
    }
    if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) >= 300) {
      res.resume();
      throw unavailable(`token server of registry ${ref.registry} answered HTTP ${res.statusCode}`);
    }
    let body: { token?: string; access_token?: string; expires_in?: number };
    try {
      body = JSON.parse((await readBody(res, 1 << 20)).toString('utf8'));
    } catch {
      throw unavailable(`token server of registry ${ref.registry} sent an unreadable answer`);
    }
    const token = body.token ?? body.access_token;
    if (!token) throw unavailable(`token server of registry ${ref.registry} sent no token`);
    const ttl = Math.max(60, Number(body.expires_in) || 60) * 1000;
    this.auth.set(key, { header: `Bearer ${token}`, expires: Date.now() + ttl - 10_000 });
  }

  private unauthorized(ref: ImageReference, what: string, reason: string): ShoalError {
    const creds = this.opts.credentials?.(ref.registry);
    const why = creds ? 'the username or password is wrong, or that user may not pull it' : 'it needs credentials (shoal login)';
    return new ShoalError(status.UNAUTHENTICATED, `registry ${ref.registry} refused ${what}: unauthorized${reason}; ${why}`);
  }

  private networkError(registry: string, err: unknown, what: string): ShoalError {
    if (err instanceof ShoalError) return err;
    const e = err as NodeJS.ErrnoException;
    const code = e?.code ?? '';
    const why =
      code === 'ECONNREFUSED'
        ? 'connection refused'
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? 'host not found'
          : code === 'ETIMEDOUT'
            ? 'timed out'
            : code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE'
              ? 'the connection broke'
              : /certificate|SSL|TLS/i.test(`${code} ${e?.message}`)
                ? `TLS failed (${e.message}); pass a CA, or mark it insecure if it speaks plain HTTP`
                : (e?.message ?? String(err));
    return unavailable(`registry ${registry} is unreachable while fetching ${what}: ${why}`);
  }

  private baseUrl(registry: string): URL {
    // Docker Hub's API lives on another host than its name.
    const host = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
    return new URL(`${this.insecure.has(registry) ? 'http' : 'https'}://${host}/`);
  }
}

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

function dataLoss(msg: string): ShoalError {
  return new ShoalError(status.DATA_LOSS, msg);
}

function parseJson(bytes: Buffer, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(bytes.toString('utf8'));
    if (v && typeof v === 'object') return v;
  } catch {
    // fall through
  }
  throw invalidArgument(`${what} is not valid JSON`);
}

function checkDescriptor(d: Descriptor, where: string): void {
  if (!d || typeof d.digest !== 'string' || !DIGEST.test(d.digest)) {
    throw invalidArgument(`${where} has a descriptor whose digest is not sha256: ${JSON.stringify(d?.digest)}`);
  }
  if (!Number.isSafeInteger(d.size) || d.size < 0) throw invalidArgument(`${where} has a descriptor for ${d.digest} without a valid size`);
}

/** The registry's own sentence from its `{"errors":[{code,message}]}` body (never its detail). */
async function registryReason(res: IncomingMessage): Promise<string> {
  try {
    const body = JSON.parse((await readBody(res, 64 << 10)).toString('utf8')) as { errors?: { code?: string; message?: string }[] };
    const first = body.errors?.[0];
    if (first?.message) return ` (${String(first.message).slice(0, 200)})`;
    if (first?.code) return ` (${String(first.code).slice(0, 100)})`;
  } catch {
    res.resume();
  }
  return '';
}
