import { invalidArgument } from '../common/errors';

/** `[registry/]repository[:tag][@sha256:hex]`, split into its parts. */
export interface ImageReference {
  /** Host[:port]; `docker.io` when the reference names none, as with `docker`. */
  registry: string;
  /** The path after the registry, e.g. `library/busybox`. */
  repository: string;
  /** The short name people type: Docker Hub's `docker.io/library/` is dropped, as `docker` does. */
  name: string;
  /** `latest` when neither a tag nor a digest was given. */
  tag?: string;
  digest?: string;
}

// The grammar of github.com/distribution/reference, which every registry and `docker` accept.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const DOMAIN = /^(?:localhost|(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;
const MAX_NAME = 255;

export function parseReference(ref: string): ImageReference {
  const bad = (why: string) => invalidArgument(`invalid image reference "${ref}": ${why}`);
  if (ref === '') throw invalidArgument('image reference is empty');

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digest.startsWith('sha256:')) throw bad('only sha256 digests are supported');
    if (!DIGEST.test(digest)) throw bad('a digest is sha256: followed by 64 lowercase hex digits');
  }

  // A colon after the last slash starts the tag; one before it belongs to the registry's port.
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`tag "${tag}" may hold only letters, digits, '_', '.' and '-' (at most 128)`);
  }

  let registry: string | undefined;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    // Docker's rule: the first component is a registry only if it looks like a host.
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      if (!DOMAIN.test(first)) throw bad(`"${first}" is not a valid registry host`);
      registry = first;
      rest = rest.slice(slash + 1);
    }
  }
  if (rest === '') throw bad('the repository name is missing');
  if (rest !== rest.toLowerCase()) throw bad('repository names must be lowercase');
  for (const component of rest.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw bad(`"${component}" is not a valid name component (lowercase letters, digits, and single separators . _ __ -)`);
    }
  }

  if (registry === undefined || registry === 'index.docker.io') registry = 'docker.io';
  if (registry === 'docker.io' && !rest.includes('/')) rest = `library/${rest}`;
  const name = registry === 'docker.io' ? rest.replace(/^library\//, '') : `${registry}/${rest}`;
  if (name.length > MAX_NAME) throw bad(`the name is longer than ${MAX_NAME} characters`);

  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository: rest, name, tag, digest };
}

/** The canonical tag a reference stands for (`shoal-test` → `shoal-test:latest`); refuses digests. */
export function normalizeTag(ref: string): string {
  const parsed = parseReference(ref);
  if (parsed.digest !== undefined) throw invalidArgument(`"${ref}" is a digest reference, not a tag`);
  return `${parsed.name}:${parsed.tag}`;
}
