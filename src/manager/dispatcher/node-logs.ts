import type * as grpc from '@grpc/grpc-js';
import { grpcTarget, shoalProto } from '../../common/proto';
import type { LogSubscription } from '../../gen/shoal/v1/LogSubscription';
import type { Node__Output } from '../../gen/shoal/v1/Node';
import type { PublishLogsMessage__Output } from '../../gen/shoal/v1/PublishLogsMessage';
import type { StoreCache } from '../store/cache';
import type { Dispatcher, LogListener } from './dispatcher';
import type { SessionRegistry } from './sessions';

/** TLS for calls to other managers, with this manager's own (renewable) certificate. */
export type PeerCredentials = () => { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions };

/**
 * A node's task logs, wherever its session is: a node talks to one manager, and a client may ask
 * any. The logs come straight from this manager's dispatcher, or through the manager holding the
 * node's session (RelayLogs), found in the session registry.
 */
export class NodeLogs {
  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly registry: SessionRegistry,
    private readonly cache: StoreCache,
    private readonly credentials: PeerCredentials,
  ) {}

  /** Starts the subscription and returns its cancel; undefined when no live manager holds the node's session. */
  async subscribe(nodeId: string, sub: LogSubscription, listener: LogListener): Promise<(() => void) | undefined> {
    if (this.dispatcher.holds(nodeId)) return this.dispatcher.subscribeLogs(nodeId, sub, listener);
    const holder = await this.registry.holder(nodeId);
    // A marker of this manager's that its dispatcher no longer has is a session just closed.
    if (holder === this.registry.managerId) return undefined;
    const addr = holder && this.cache.get<Node__Output>('nodes', holder)?.manager_status?.addr;
    if (!addr) return undefined;
    return this.relay(addr, nodeId, sub, listener);
  }

  private relay(addr: string, nodeId: string, sub: LogSubscription, listener: LogListener): () => void {
    const { credentials, options } = this.credentials();
    const client = new (shoalProto().Dispatcher)(grpcTarget(addr), credentials, options);
    const call = client.RelayLogs({ node_id: nodeId, subscription: sub });
    let closed = false;
    const finish = (msg: PublishLogsMessage__Output) => {
      if (closed) return;
      closed = true;
      client.close();
      listener(msg);
    };
    call.on('data', (msg: PublishLogsMessage__Output) => (msg.close ? finish(msg) : listener(msg)));
    call.on('error', (err: grpc.ServiceError) => {
      if (!closed) finish({ subscription_id: sub.id!, lines: [], close: true, err: `manager ${addr}, which serves node ${nodeId}, failed: ${err.details || err.message}` });
    });
    call.on('end', () => finish({ subscription_id: sub.id!, lines: [], close: true, err: '' }));
    return () => {
      closed = true;
      call.cancel();
      client.close();
    };
  }
}
