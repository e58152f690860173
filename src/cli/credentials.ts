import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { invalidArgument } from '../common/errors';
import { parseReference } from '../images/reference';

/**
 * The CLI user's registry credentials, like Docker's config.json: `{"auths": {"host:port":
 * {"auth": base64("user:password")}}}` in $SHOAL_CONFIG/config.json or ~/.shoal/config.json,
 * readable by its owner only (0600, in a 0700 directory).
 */
interface ConfigFile {
  auths?: Record<string, { auth?: string }>;
  [other: string]: unknown;
}

export interface Credentials {
  registry: string;
  username: string;
  password: string;
}

export function configDir(): string {
  return process.env.SHOAL_CONFIG || path.join(os.homedir(), '.shoal');
}

const configFile = () => path.join(configDir(), 'config.json');

function read(): ConfigFile {
  let text: string;
  try {
    text = fs.readFileSync(configFile(), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  try {
    const v = JSON.parse(text);
    return v && typeof v === 'object' ? v : {};
  } catch {
    throw invalidArgument(`${configFile()} is not valid JSON; fix or remove it`);
  }
}

function write(config: ConfigFile): void {
  fs.mkdirSync(configDir(), { recursive: true, mode: 0o700 });
  // Written aside with 0600 and renamed, so the file is never briefly readable by others or half-written.
  const tmp = `${configFile()}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, configFile());
}

/** A registry as the user names it: host[:port], with any scheme or path dropped. */
export function normalizeRegistry(name: string): string {
  const host = name.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  if (!/^[a-zA-Z0-9.[\]:-]+$/.test(host)) throw invalidArgument(`"${name}" is not a registry host[:port]`);
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
}

export function storeCredentials(c: Credentials): void {
  const config = read();
  config.auths = { ...config.auths, [c.registry]: { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64') } };
  write(config);
}

/** Removes a registry's credentials; false when there were none. */
export function removeCredentials(registry: string): boolean {
  const config = read();
  if (!config.auths?.[registry]) return false;
  delete config.auths[registry];
  write(config);
  return true;
}

export function credentialsFor(registry: string): Credentials | undefined {
  const entry = read().auths?.[registry];
  if (!entry?.auth) return undefined;
  const text = Buffer.from(entry.auth, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 1) return undefined;
  return { registry, username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** The stored credentials for the registry an image reference names, if any. */
export function credentialsForImage(image: string): Credentials | undefined {
  let registry: string;
  try {
    registry = parseReference(image).registry;
  } catch {
    return undefined;
  }
  return credentialsFor(registry);
}
