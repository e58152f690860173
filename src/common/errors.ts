import { Metadata, status, type ServiceError, type ServerWritableStream } from '@grpc/grpc-js';

/**
 * An error meant for a person: one clear sentence, plus the gRPC status it travels with.
 * Anything that crosses an API boundary should be a ShoalError; other errors become INTERNAL.
 */
export class ShoalError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'ShoalError';
  }
}

export const invalidArgument = (msg: string) => new ShoalError(status.INVALID_ARGUMENT, msg);
export const notFound = (msg: string) => new ShoalError(status.NOT_FOUND, msg);
export const alreadyExists = (msg: string) => new ShoalError(status.ALREADY_EXISTS, msg);
export const failedPrecondition = (msg: string) => new ShoalError(status.FAILED_PRECONDITION, msg);
export const aborted = (msg: string) => new ShoalError(status.ABORTED, msg);
export const unavailable = (msg: string) => new ShoalError(status.UNAVAILABLE, msg);
export const resourceExhausted = (msg: string) => new ShoalError(status.RESOURCE_EXHAUSTED, msg);
export const internal = (msg: string) => new ShoalError(status.INTERNAL, msg);
export const permissionDenied = (msg: string) => new ShoalError(status.PERMISSION_DENIED, msg);
export const unauthenticated = (msg: string) => new ShoalError(status.UNAUTHENTICATED, msg);

/** True when err is a ShoalError carrying this gRPC status. */
export const hasCode = (err: unknown, code: status): boolean => err instanceof ShoalError && err.code === code;

/** Converts any thrown value into what a gRPC handler passes to its callback. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  if (err instanceof ShoalError) return { code: err.code, details: err.message, metadata: new Metadata() };
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: `internal error: ${message}`, metadata: new Metadata() };
}

/**
 * Ends a server stream with the error's status. grpc-js sends a stream's status from its 'error'
 * event; destroy() closes the stream without any, and the client waits on it forever.
 */
export function failStream(call: Pick<ServerWritableStream<unknown, unknown>, 'emit'>, err: unknown): void {
  call.emit('error', toServiceError(err));
}

/** Converts an error from a gRPC call back into a ShoalError, keeping the server's sentence. */
export function fromServiceError(err: unknown): ShoalError {
  if (err instanceof ShoalError) return err;
  const e = err as Partial<ServiceError>;
  if (typeof e?.code === 'number') return new ShoalError(e.code, e.details || e.message || 'unknown error');
  return new ShoalError(status.UNKNOWN, err instanceof Error ? err.message : String(err));
}
