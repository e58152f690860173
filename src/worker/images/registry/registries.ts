import { readFileSync } from 'node:fs';
import { RegistryClient, type RegistryCredentials } from './client';

export interface RegistriesConfig {
  /** host[:port] of registries spoken to over plain HTTP (shoald --insecure-registry). */
  insecure: string[];
  /** A PEM CA bundle file trusted for HTTPS registries, instead of the system's. */
  caFile?: string;
}

/** The daemon's registry settings and the one client (with its token cache) built from them. */
export class Registries {
  readonly client: RegistryClient;
  private readonly ca: Buffer | undefined;
  private readonly credentials = new Map<string, RegistryCredentials>();

  constructor(private readonly config: RegistriesConfig) {
    this.ca = config.caFile ? readFileSync(config.caFile) : undefined;
    this.client = this.make(config.insecure);
  }

  /** A client that also speaks plain HTTP to `registry`, for one pull the user marked insecure. */
  withInsecure(registry: string): RegistryClient {
    return this.client.isInsecure(registry) ? this.client : this.make([...this.config.insecure, registry]);
  }

  private make(insecure: string[]): RegistryClient {
    return new RegistryClient({ insecureRegistries: insecure, ca: this.ca, credentials: (r) => this.credentials.get(r) });
  }
}
