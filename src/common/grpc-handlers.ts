import type { handleUnaryCall } from '@grpc/grpc-js';
import { toServiceError } from './errors';

/** Adapts an async function to a unary gRPC handler; thrown errors travel as their gRPC status. */
export function unary<Req, Res>(fn: (req: Req) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (call, cb) =>
    fn(call.request).then(
      (res) => cb(null, res),
      (err) => cb(toServiceError(err)),
    );
}
