import { GRPCDeadlineExceededError, GRPCResourceExhastedError, GRPCUnavailableError, isRecoverableError } from 'etcd3';
import { internal, resourceExhausted, ShoalError, unavailable } from '../../common/errors';

/** etcd's default --max-request-bytes: no single request (a transaction included) may be larger. */
export const ETCD_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

const TOO_LARGE = /request is too large|larger than max/i;

/** True when the etcd client's error says the request exceeded etcd's size limit. */
export const isTooLarge = (err: unknown): boolean => err instanceof Error && TOO_LARGE.test(err.message);

/**
 * Turns what the etcd client throws into a ShoalError that says what happened to the cluster
 * store, so callers and the CLI see UNAVAILABLE or RESOURCE_EXHAUSTED instead of INTERNAL.
 */
export function storeError(err: unknown): ShoalError {
  if (err instanceof ShoalError) return err;
  // grpc-js ends an unreachable-server message with an empty "Resolution note: ".
  const message = (err instanceof Error ? err.message : String(err)).replace(/\s*Resolution note:\s*$/, '');
  if (isTooLarge(err)) {
    return resourceExhausted(`the write is too large for the cluster store (etcd takes at most 1.5 MiB per request): ${message}`);
  }
  if (err instanceof GRPCResourceExhastedError) return resourceExhausted(`the cluster store (etcd) refused the write: ${message}`);
  // etcd holds a request that needs its raft leader until the deadline when there is none: with
  // managers down, that is a lost quorum, and what the operator can act on.
  if (err instanceof GRPCDeadlineExceededError) {
    return unavailable('the cluster store (etcd) did not answer in time; more than half of the managers must be up and reachable for the cluster to be read or changed');
  }
  if (err instanceof GRPCUnavailableError || (err instanceof Error && isRecoverableError(err))) return unavailable(`the cluster store (etcd) is unavailable: ${message}`);
  return internal(`the cluster store (etcd) failed: ${message}`);
}
