import { Command } from 'commander';
import type { Client } from '../client';
import { listingOptions, printIdsOrJson, printTable, titleCase } from '../format';

export function nodeCommand(connect: () => Client): Command {
  const node = new Command('node').description('manage nodes');
  listingOptions(node.command('ls').description('list the nodes of the cluster'), 'node')
    .action(async (opts) => {
      const client = connect();
      const [{ nodes }, info] = await Promise.all([client.listNodes(), client.info()]);
      if (printIdsOrJson(opts, nodes, (n) => n.id)) return;
      printTable(
        ['ID', 'HOSTNAME', 'STATUS', 'AVAILABILITY', 'MANAGER STATUS', 'ENGINE VERSION'],
        nodes.map((n) => [
          n.id === info.node_id ? `${n.id} *` : n.id,
          n.description!.hostname,
          titleCase(n.status!.state),
          titleCase(n.spec!.availability),
          n.spec!.role === 'manager' ? (n.manager_status?.leader ? 'Leader' : titleCase(n.manager_status?.reachability ?? '')) : '',
          n.description!.engine_version,
        ]),
      );
    });
  return node;
}
