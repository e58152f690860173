import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { RegistryClient, type RegistryCredentials } from './client';

export interface RegistriesConfig {
  /** host[:port] of registries spoken to over plain HTTP (shoald --insecure-registry). */
  insecure: string[];
  /** A PEM CA bundle file trusted for HTTPS registries, instead of the system's. */
  caFile?: string;
}

/** Credentials for one registry host[:port]; never offered to another. */
export interface RegistryAuth extends RegistryCredentials {
  registry: string;
}

const MAX_CLIENTS = 64;

/**
 * The daemon's registry settings and the clients built from them. A client caches tokens, so
 * one is kept per (insecure registry, credentials): the 50 tasks of a service pulling with the
 * same credentials share one client, one token and one download of each blob.
 */
export class Registries {
  readonly client: RegistryClient;
  private readonly ca: Buffer | undefined;
  private readonly clients = new Map<string, RegistryClient>();

  constructor(private readonly config: RegistriesConfig) {
    this.ca = config.caFile ? readFileSync(config.caFile) : undefined;
    this.client = this.make(config.insecure);
  }

  /** A client that also speaks plain HTTP to `registry`, for one pull the user marked insecure. */
  withInsecure(registry: string): RegistryClient {
    return this.clientFor({ insecureRegistry: registry });
  }

  /**
   * A client for `auth`'s registry with those credentials (and plain HTTP to `insecureRegistry`,
   * if given). Without either, the daemon's shared, credential-less client.
   */
  clientFor(opts: { auth?: RegistryAuth | null; insecureRegistry?: string }): RegistryClient {
    const auth = opts.auth?.registry && opts.auth.username ? opts.auth : undefined;
    const insecure = opts.insecureRegistry && !this.config.insecure.includes(opts.insecureRegistry) ? opts.insecureRegistry : undefined;
    if (!auth && !insecure) return this.client;
    // Keyed by a hash, so no password sits in a map key that a heap dump or a debugger shows as text.
    const key = createHash('sha256')
      .update(JSON.stringify([insecure ?? '', auth?.registry ?? '', auth?.username ?? '', auth?.password ?? '']))
      .digest('hex');
    let client = this.clients.get(key);
    if (!client) {
      if (this.clients.size >= MAX_CLIENTS) this.clients.delete(this.clients.keys().next().value!);
      const creds = auth ? { username: auth.username, password: auth.password } : undefined;
      client = this.make(insecure ? [...this.config.insecure, insecure] : this.config.insecure, auth ? (r) => (r === auth.registry ? creds : undefined) : undefined);
      this.clients.set(key, client);
    }
    return client;
  }

  private make(insecure: string[], credentials?: (registry: string) => RegistryCredentials | undefined): RegistryClient {
    return new RegistryClient({ insecureRegistries: insecure, ca: this.ca, credentials });
  }
}
