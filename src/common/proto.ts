import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as DispatcherProto } from '../gen/dispatcher';

/** Must match the options `npm run gen` passes to proto-loader-gen-types, or the generated types lie. */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** proto/ sits at the package root, which is two levels up from src/ and three from dist/src/. */
function protoDir(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'proto');
    if (fs.existsSync(path.join(candidate, 'shoal', 'v1', 'dispatcher.proto'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the proto/ directory of the shoal package');
    dir = parent;
  }
}

let loaded: DispatcherProto | undefined;

/** The shoal.v1 package: Control, Images and Dispatcher services (dispatcher.proto imports the rest). */
export function shoalProto(): DispatcherProto['shoal']['v1'] {
  if (!loaded) {
    const def = protoLoader.loadSync('shoal/v1/dispatcher.proto', { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
    loaded = grpc.loadPackageDefinition(def) as unknown as DispatcherProto;
  }
  return loaded.shoal.v1;
}

/** gRPC target for a unix socket path or a host:port. */
export function grpcTarget(addr: string): string {
  return addr.startsWith('/') ? `unix://${addr}` : addr;
}
