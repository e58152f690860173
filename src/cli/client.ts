import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { ControlClient } from '../gen/shoal/v1/Control';
import type { ImagesClient } from '../gen/shoal/v1/Images';
import { fromServiceError, ShoalError } from '../common/errors';
import { grpcTarget, shoalProto } from '../common/proto';
import { DEFAULTS } from '../daemon/config';
import type { InitResponse__Output } from '../gen/shoal/v1/InitResponse';
import type { InfoResponse__Output } from '../gen/shoal/v1/InfoResponse';
import type { CreateServiceRequest } from '../gen/shoal/v1/CreateServiceRequest';
import type { Service__Output } from '../gen/shoal/v1/Service';
import type { ServiceResponse__Output } from '../gen/shoal/v1/ServiceResponse';
import type { ListServicesResponse__Output } from '../gen/shoal/v1/ListServicesResponse';
import type { UpdateServiceRequest } from '../gen/shoal/v1/UpdateServiceRequest';
import type { RemoveServiceResponse__Output } from '../gen/shoal/v1/RemoveServiceResponse';
import type { ListTasksRequest } from '../gen/shoal/v1/ListTasksRequest';
import type { ListTasksResponse__Output } from '../gen/shoal/v1/ListTasksResponse';
import type { ListNodesResponse__Output } from '../gen/shoal/v1/ListNodesResponse';
import type { ListImagesResponse__Output } from '../gen/shoal/v1/ListImagesResponse';
import type { RemoveImageResponse__Output } from '../gen/shoal/v1/RemoveImageResponse';
import type { PullImageRequest } from '../gen/shoal/v1/PullImageRequest';
import type { PullImageResponse__Output } from '../gen/shoal/v1/PullImageResponse';
import type { PruneImagesResponse__Output } from '../gen/shoal/v1/PruneImagesResponse';
import type { CheckLoginRequest } from '../gen/shoal/v1/CheckLoginRequest';
import type { JoinRequest } from '../gen/shoal/v1/JoinRequest';
import type { JoinResponse__Output } from '../gen/shoal/v1/JoinResponse';
import type { GetJoinTokenResponse__Output } from '../gen/shoal/v1/GetJoinTokenResponse';
import type { IssueClientCertResponse__Output } from '../gen/shoal/v1/IssueClientCertResponse';
import type { Node__Output } from '../gen/shoal/v1/Node';
import type { UpdateNodeRequest } from '../gen/shoal/v1/UpdateNodeRequest';
import type { RemoveNodeResponse__Output } from '../gen/shoal/v1/RemoveNodeResponse';
import type { Network__Output } from '../gen/shoal/v1/Network';
import type { NetworkSpec } from '../gen/shoal/v1/NetworkSpec';
import type { ListNetworksResponse__Output } from '../gen/shoal/v1/ListNetworksResponse';
import type { RemoveNetworkResponse__Output } from '../gen/shoal/v1/RemoveNetworkResponse';
import { clientCredentials } from '../ca/tls';

/** Where the CLI finds its daemon: -H, then SHOAL_HOST, then the local socket. */
export function daemonAddress(flag?: string): string {
  return flag || process.env.SHOAL_HOST || DEFAULTS.socket;
}

/** PEM files of an admin client certificate (`shoal ca client-cert`) for a remote manager. */
export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/**
 * A unix socket needs nothing (it is root-only); `tcp://HOST:PORT` is a manager's cluster port,
 * which speaks only TLS and wants a client certificate for anything but joining.
 */
function connection(address: string, tls: TlsFiles): { target: string; credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  if (!address.startsWith('tcp://')) return { target: grpcTarget(address), credentials: grpc.credentials.createInsecure(), options: {} };
  const read = (file: string | undefined, flag: string) => {
    if (!file) throw new ShoalError(grpc.status.INVALID_ARGUMENT, `${flag} is required with -H tcp://… (make the files with \`shoal ca client-cert\` on a manager)`);
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new ShoalError(grpc.status.INVALID_ARGUMENT, `${flag}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  const { credentials, options } = clientCredentials({ caPem: read(tls.ca, '--tlscacert'), certPem: read(tls.cert, '--tlscert'), keyPem: read(tls.key, '--tlskey') });
  return { target: address.slice('tcp://'.length), credentials, options };
}

/**
 * How grpc-js words a failure of the connection itself, as opposed to an error status the
 * daemon sent (whose sentence may quote such words, e.g. about etcd, but never starts with them).
 */
const CONNECTION_FAILURE = /^(No connection established|Connection dropped|read ECONNRESET|write EPIPE|Received RST_STREAM|connect E)/;
const UNKNOWN_EFFECT = 'whatever it was changing may or may not have happened: check with `shoal service ls` once shoald is back';

/** A create or update always answers with the service it stored. */
const stored = (res: ServiceResponse__Output) => ({ service: res.service!, warnings: res.warnings });

/** A connection to a shoal daemon with promise-returning calls and person-readable errors. */
export class Client {
  readonly control: ControlClient;
  readonly images: ImagesClient;
  /** Whether the daemon has answered this process yet: losing it after that is losing it mid-command. */
  private reached = false;

  constructor(
    readonly address: string,
    tls: TlsFiles = {},
  ) {
    const proto = shoalProto();
    const { target, credentials, options } = connection(address, tls);
    this.control = new proto.Control(target, credentials, options);
    this.images = new proto.Images(target, credentials, { ...options, channelOverride: this.control.getChannel() });
  }

  private unary<Res>(client: grpc.Client, method: string, req: object, timeoutMs = 60_000): Promise<Res> {
    return new Promise((resolve, reject) => {
      const fn = (client as unknown as Record<string, Function>)[method];
      fn.call(client, req, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: Res) => {
        if (err) return reject(this.explain(err));
        this.reached = true;
        resolve(res);
      });
    });
  }

  init = (advertise_addr = '') => this.unary<InitResponse__Output>(this.control, 'Init', { advertise_addr });
  join = (req: JoinRequest) => this.unary<JoinResponse__Output>(this.control, 'Join', req, 120_000);
  leave = (force: boolean) => this.unary<object>(this.control, 'Leave', { force });
  joinToken = (role: string, rotate: boolean) => this.unary<GetJoinTokenResponse__Output>(this.control, 'GetJoinToken', { role, rotate });
  clientCert = () => this.unary<IssueClientCertResponse__Output>(this.control, 'IssueClientCert', {});
  getNode = (node: string) => this.unary<Node__Output>(this.control, 'GetNode', { node });
  updateNode = (req: UpdateNodeRequest) => this.unary<Node__Output>(this.control, 'UpdateNode', req);
  removeNode = (node: string, force: boolean) => this.unary<RemoveNodeResponse__Output>(this.control, 'RemoveNode', { node, force });
  info = () => this.unary<InfoResponse__Output>(this.control, 'Info', {});
  createService = async (req: CreateServiceRequest) => stored(await this.unary<ServiceResponse__Output>(this.control, 'CreateService', req));
  getService = (service: string) => this.unary<Service__Output>(this.control, 'GetService', { service });
  listServices = () => this.unary<ListServicesResponse__Output>(this.control, 'ListServices', {});
  updateService = async (req: UpdateServiceRequest) => stored(await this.unary<ServiceResponse__Output>(this.control, 'UpdateService', req));
  removeService = (service: string) => this.unary<RemoveServiceResponse__Output>(this.control, 'RemoveService', { service });
  rollbackService = async (service: string) => stored(await this.unary<ServiceResponse__Output>(this.control, 'RollbackService', { service }));
  listTasks = (req: ListTasksRequest) => this.unary<ListTasksResponse__Output>(this.control, 'ListTasks', req);
  listNodes = () => this.unary<ListNodesResponse__Output>(this.control, 'ListNodes', {});
  createNetwork = (spec: NetworkSpec) => this.unary<Network__Output>(this.control, 'CreateNetwork', { spec });
  getNetwork = (network: string) => this.unary<Network__Output>(this.control, 'GetNetwork', { network });
  listNetworks = () => this.unary<ListNetworksResponse__Output>(this.control, 'ListNetworks', {});
  removeNetwork = (network: string) => this.unary<RemoveNetworkResponse__Output>(this.control, 'RemoveNetwork', { network });
  listImages = () => this.unary<ListImagesResponse__Output>(this.images, 'List', {});
  removeImage = (image: string) => this.unary<RemoveImageResponse__Output>(this.images, 'Remove', { image });
  /** Large images take a while; the daemon's registry timeouts end a stuck pull well before this. */
  pullImage = (req: PullImageRequest) => this.unary<PullImageResponse__Output>(this.images, 'Pull', req, 60 * 60_000);
  pruneImages = (all: boolean) => this.unary<PruneImagesResponse__Output>(this.images, 'Prune', { all }, 10 * 60_000);
  checkLogin = (req: CheckLoginRequest) => this.unary<object>(this.images, 'CheckLogin', req);

  /** Turns a failed call into one sentence that says what went wrong and what to do. */
  explain(err: unknown): ShoalError {
    const e = fromServiceError(err);
    const detail = e.message.replace(/^No connection established\. Last error: (Error: )?/, '').replace(/\. Resolution note: .*$/, '');
    if (e.code === grpc.status.UNAVAILABLE && /EACCES/.test(e.message)) {
      return new ShoalError(
        grpc.status.PERMISSION_DENIED,
        `permission denied on ${this.address}: the daemon's socket is root-only (like docker.sock); run shoal as root, e.g. with sudo`,
      );
    }
    if (e.code === grpc.status.DEADLINE_EXCEEDED && /^Deadline exceeded/.test(e.message)) {
      return new ShoalError(e.code, `shoald at ${this.address} did not answer in time; ${UNKNOWN_EFFECT}`);
    }
    if (e.code !== grpc.status.UNAVAILABLE || !CONNECTION_FAILURE.test(e.message)) return e;
    if (this.reached || /ECONNRESET|EPIPE|Connection dropped|RST_STREAM/.test(e.message)) {
      return new ShoalError(e.code, `shoald went away during the command (${detail}); ${UNKNOWN_EFFECT}`);
    }
    if (this.address.startsWith('/') && !fs.existsSync(this.address)) {
      return new ShoalError(e.code, `cannot connect to the shoal daemon at ${this.address}: is shoald running? Start it as root with \`shoald &\``);
    }
    return new ShoalError(e.code, `cannot connect to the shoal daemon at ${this.address} (${detail}): is shoald running?`);
  }

  close(): void {
    this.control.close();
  }
}
