import { Command } from 'commander';
import type { Client } from '../client';
import { printJson, printTable, titleCase } from '../format';

export function nodeCommand(connect: () => Client): Command {
  const node = new Command('node').description('manage nodes');
  node
    .command('ls')
    .description('list the nodes of the cluster')
    .option('-q, --quiet', 'print only IDs')
    .option('--format <format>', '"table" or "json"', 'table')
    .action(async (opts) => {
      const client = connect();
      const [{ nodes }, info] = await Promise.all([client.listNodes(), client.info()]);
      if (opts.quiet) return void process.stdout.write(nodes.map((n) => `${n.id}\n`).join(''));
      if (opts.format === 'json') return printJson(nodes);
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
