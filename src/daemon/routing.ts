import type * as grpc from '@grpc/grpc-js';
import { failStream, type ShoalError, toServiceError } from '../common/errors';

// Any grpc-js handler: unary and client-streaming ones take a callback, server-streaming ones do not.
type Handler = (call: never, callback?: never) => void;

/**
 * Handlers for every method of a service that, per call, either hand the call to the handlers
 * `pick` returns or refuse it with the ShoalError it returns. This is how a service bound at
 * start-up reaches a role (manager) that may come and go while the daemon runs.
 */
export function routed<H extends object>(service: grpc.ServiceDefinition, pick: (call: unknown) => H | ShoalError): H {
  const handlers: Record<string, Handler> = {};
  for (const name of Object.keys(service)) {
    handlers[name] = (call: never, callback?: never) => {
      const target = pick(call);
      if (target instanceof Error) return refuse(call, callback, target);
      return (target as Record<string, Handler>)[name](call, callback);
    };
  }
  return handlers as H;
}

/** Fails a call of any kind (unary callback or stream) with a ShoalError. */
export function refuse(call: unknown, callback: unknown, err: ShoalError): void {
  if (typeof callback === 'function') return (callback as (e: unknown) => void)(toServiceError(err));
  failStream(call as grpc.ServerWritableStream<unknown, unknown>, err);
}
