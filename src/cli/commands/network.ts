import { Command } from 'commander';
import type { Client } from '../client';
import { listingOptions, printIdsOrJson, printJson, printTable, shortId } from '../format';
import { collect, labelMap } from './service-flags';

type Connect = () => Client;

/** `shoal network create|ls|inspect|rm`, as Docker spells them. */
export function networkCommand(connect: Connect): Command {
  const network = new Command('network').description('manage overlay networks');

  network
    .command('create')
    .description('create an overlay network; its subnet comes from the default pool unless --subnet is given')
    .argument('<name>', 'network name')
    .option('-d, --driver <driver>', 'network driver (only overlay)', 'overlay')
    .option('--subnet <cidr>', 'subnet, e.g. 10.20.0.0/24; it must not overlap another network')
    .option('-l, --label <KEY=VALUE>', 'network label (repeatable)', collect, [])
    .action(async (name: string, opts) => {
      const n = await connect().createNetwork({ name, driver: opts.driver, subnet: opts.subnet ?? '', labels: labelMap(opts.label) });
      process.stdout.write(`${n.id}\n`);
    });

  listingOptions(network.command('ls').alias('list').description('list networks'), 'network').action(async (opts) => {
    const { networks } = await connect().listNetworks();
    if (printIdsOrJson(opts, networks, (n) => n.id)) return;
    printTable(
      ['NETWORK ID', 'NAME', 'DRIVER', 'SUBNET', 'VNI'],
      networks.map((n) => [shortId(n.id), n.spec!.name, n.spec!.driver, n.subnet, n.vni]),
    );
  });

  network
    .command('inspect')
    .description('show networks in full, as JSON')
    .argument('<network...>', 'network names, IDs or ID prefixes')
    .action(async (refs: string[]) => {
      const client = connect();
      printJson(await Promise.all(refs.map((r) => client.getNetwork(r))));
    });

  network
    .command('rm')
    .alias('remove')
    .description('remove networks no service or task uses')
    .argument('<network...>', 'network names, IDs or ID prefixes')
    .action(async (refs: string[]) => {
      const client = connect();
      for (const ref of refs) {
        await client.removeNetwork(ref);
        process.stdout.write(`${ref}\n`);
      }
    });
  return network;
}
