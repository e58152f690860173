import { handleWhen, noop, retry, ExponentialBackoff } from 'cockatiel';
import { Etcd3, GRPCDeadlineExceededError, isRecoverableError } from 'etcd3';
import * as fs from 'node:fs';
import type { EtcdTlsFiles } from './supervisor';

/** Without quorum etcd never answers a write; a deadline turns that into an error people can read. */
export const ETCD_CALL_TIMEOUT_MS = 5000;
const MAX_RECEIVE_BYTES = 1024 * 1024 * 1024;

// A deadline passed without an answer is no leader (or no quorum), which no other member has either.
const retryable = (err: Error) => isRecoverableError(err) && !(err instanceof GRPCDeadlineExceededError);

/**
 * An etcd client for shoal's members. etcd3's default per-host circuit breaker opens for five
 * seconds after three failed calls, and then fails every call at once, including the lease
 * keep-alives and the membership changes that a joining manager or a slow, loaded member produces
 * by the dozen. Calls here have deadlines and their callers retry with their own backoff, so the
 * breaker is off; a failed call is retried once, on another member, after a short backoff.
 */
export function connectEtcd(hosts: string | string[], tls: EtcdTlsFiles, opts: { callTimeoutMs?: number; dialTimeoutMs?: number } = {}): Etcd3 {
  const callTimeoutMs = opts.callTimeoutMs ?? ETCD_CALL_TIMEOUT_MS;
  return new Etcd3({
    hosts,
    credentials: etcdCredentials(tls),
    dialTimeout: opts.dialTimeoutMs ?? 2000,
    // A page of Store.range holds up to LIST_PAGE_KEYS objects, each as large as etcd takes (1.5 MiB).
    grpcOptions: { 'grpc.max_receive_message_length': MAX_RECEIVE_BYTES },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: {
      host: () => noop,
      global: retry(handleWhen(retryable), { maxAttempts: 2, backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }) }),
    },
  });
}

export function etcdCredentials(tls: EtcdTlsFiles): { rootCertificate: Buffer; privateKey: Buffer; certChain: Buffer } {
  return { rootCertificate: fs.readFileSync(tls.caFile), privateKey: fs.readFileSync(tls.keyFile), certChain: fs.readFileSync(tls.certFile) };
}
