import type { RegistryAuth } from '../images/registry/registries';
import type { Versioned } from './store/store';

/**
 * A service's registry credentials (--with-registry-auth), under their own etcd key (id = the
 * service id) rather than in the spec: the Service and its Tasks, which every API response and
 * `inspect` returns and the orchestrator copies into each task, never hold them, so no reader
 * has to remember to strip them. Only the dispatcher reads them, and hands them to the nodes
 * that run the service's tasks. Deleted with the service.
 */
export interface StoredRegistryAuth extends Versioned, RegistryAuth {}
