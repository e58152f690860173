import type { Logger } from '../common/logger';
import { parseReference } from '../images/reference';
import type { RegistryClient } from '../images/registry/client';
import type { RegistryAuth } from '../images/registry/registries';

/** Turns `name:tag` into `name:tag@sha256:…` once, so every node runs the same bytes. */
export type ImagePinner = (image: string, auth?: RegistryAuth) => Promise<{ image: string; warning?: string }>;

/**
 * Resolves a tag through the registry, as Swarm does at service create and update. A reference
 * already pinned, or one naming no registry (a loaded image), is kept as it is. When the
 * registry cannot say, the tag is kept and a warning logged and returned: the create still succeeds, and
 * each node then resolves the tag itself when it pulls.
 */
export function registryPinner(clientFor: (auth?: RegistryAuth) => RegistryClient, log: Logger): ImagePinner {
  return async (image, auth) => {
    let ref;
    try {
      ref = parseReference(image);
    } catch {
      return { image };
    }
    const namesRegistry = ref.registry !== 'docker.io' || /^(?:index\.)?docker\.io\//.test(image);
    if (ref.digest || !namesRegistry) return { image };
    try {
      // The service's credentials (--with-registry-auth) pin a private image; they serve no other registry.
      const digest = await clientFor(auth).resolveDigest(ref);
      log.info({ image, digest }, 'pinned image tag to its digest');
      return { image: `${image}@${digest}` };
    } catch (err) {
      const warning = `image ${image} could not be resolved to a digest (${(err as Error).message}); keeping the tag, so nodes may run different versions of it`;
      log.warn({ image }, warning);
      return { image, warning };
    }
  };
}
