import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { failedPrecondition } from '../../src/common/errors';
import { shoalProto } from '../../src/common/proto';
import { routed } from '../../src/daemon/routing';
import type { DispatcherClient, DispatcherHandlers } from '../../src/gen/shoal/v1/Dispatcher';

const server = new grpc.Server();
let client: DispatcherClient;

beforeAll(async () => {
  const service = shoalProto().Dispatcher.service;
  server.addService(service, routed<DispatcherHandlers>(service, () => failedPrecondition('this node is not a manager')));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  client = new (shoalProto().Dispatcher)(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

afterAll(() => {
  client?.close();
  server.forceShutdown();
});

it('refuses a unary call with the error’s status', async () => {
  const err = await new Promise<grpc.ServiceError | null>((resolve) => client.Heartbeat({ session_id: 'x' }, (e) => resolve(e)));
  expect(err?.code).toBe(grpc.status.FAILED_PRECONDITION);
  expect(err?.details).toBe('this node is not a manager');
});

it('ends a refused server stream with the error’s status, so the client does not wait on it', async () => {
  const call = client.Session({ description: { hostname: 'routing-test' } });
  const err = await new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
  expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
  expect(err.details).toBe('this node is not a manager');
});
