import { status } from '@grpc/grpc-js';
import type { ControlHandlers } from '../gen/shoal/v1/Control';
import type { Network__Output } from '../gen/shoal/v1/Network';
import type { NetworkSpec } from '../gen/shoal/v1/NetworkSpec';
import type { Service__Output } from '../gen/shoal/v1/Service';
import type { ServiceVips__Output } from '../gen/shoal/v1/ServiceVips';
import type { TaskNetworks__Output } from '../gen/shoal/v1/TaskNetworks';
import type { Task__Output } from '../gen/shoal/v1/Task';
import { aborted, failedPrecondition, hasCode } from '../common/errors';
import { unary } from '../common/grpc-handlers';
import { now } from '../common/tasks';
import { NETWORK_ALLOCATIONS_ID, networkUsers, planNetworkCreate, resolveNetwork, validateNetworkSpec, type NetworkAllocations } from './networks';
import type { Store } from './store/store';

export type NetworkHandlers = Pick<ControlHandlers, 'CreateNetwork' | 'GetNetwork' | 'ListNetworks' | 'RemoveNetwork'>;

const CREATE_ATTEMPTS = 5;

/** `shoal network …`: overlay networks, with their subnet and VNI allocated and stored at create. */
export class NetworkApi {
  constructor(private readonly store: Store) {}

  handlers(): NetworkHandlers {
    return {
      CreateNetwork: unary((req) => this.createNetwork(req.spec)),
      GetNetwork: unary(async (req) => resolveNetwork(await this.listNetworks(), req.network)),
      ListNetworks: unary(async () => ({ networks: await this.listNetworks() })),
      RemoveNetwork: unary((req) => this.removeNetwork(req.network)),
    };
  }

  private async listNetworks(): Promise<Network__Output[]> {
    const networks = await this.store.list<Network__Output>('networks');
    return networks.sort((a, b) => a.spec!.name.localeCompare(b.spec!.name) || a.id.localeCompare(b.id));
  }

  private async createNetwork(input: NetworkSpec | null): Promise<Network__Output> {
    const spec = validateNetworkSpec(input);
    for (let attempt = 1; ; attempt++) {
      const lock = await this.store.get<NetworkAllocations>('network-ipam', NETWORK_ALLOCATIONS_ID);
      const { network, ops } = planNetworkCreate(spec, await this.store.list<Network__Output>('networks'), lock, now());
      try {
        await this.store.commit(ops);
        return network;
      } catch (err) {
        if (!hasCode(err, status.ABORTED)) throw err;
        if (attempt === CREATE_ATTEMPTS) throw aborted(`network "${spec.name}" was not created: other networks kept being created at the same time; retry`);
      }
    }
  }

  private async removeNetwork(ref: string): Promise<{ id: string }> {
    const [networks, services, vips, attachments, tasks] = await Promise.all([
      this.listNetworks(),
      this.store.list<Service__Output>('services'),
      this.store.list<ServiceVips__Output>('service-vips'),
      this.store.list<TaskNetworks__Output>('task-networks'),
      this.store.list<Task__Output>('tasks'),
    ]);
    const network = resolveNetwork(networks, ref);
    // The allocator would make it again for the next published port, with new addresses for all.
    if (network.spec!.ingress) throw failedPrecondition(`network ${network.spec!.name} is the routing mesh's and cannot be removed`);
    const users = networkUsers(network.id, { services, vips, attachments, tasks });
    if (users.length) {
      const shown = users.slice(0, 3).join(', ') + (users.length > 3 ? ` and ${users.length - 3} more` : '');
      throw failedPrecondition(`network ${network.spec!.name} is in use by ${shown}; remove them first`);
    }
    await this.store.commit([{ type: 'delete', kind: 'networks', id: network.id, version: network.version }]);
    return { id: network.id };
  }
}
