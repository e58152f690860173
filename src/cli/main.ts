import { Command } from 'commander';
import { ShoalError } from '../common/errors';
import { VERSION } from '../common/version';
import { Client, daemonAddress } from './client';
import { imageCommand } from './commands/image';
import { loginCommands } from './commands/login';
import { networkCommand } from './commands/network';
import { nodeCommand } from './commands/node';
import { caCommand, clusterCommands } from './commands/cluster';
import { serviceCommand } from './commands/service';

const program = new Command('shoal')
  .description('shoal: run replicated services on a cluster of nodes')
  .version(VERSION)
  .option('-H, --host <addr>', 'daemon socket, or tcp://MANAGER:2377 (default $SHOAL_HOST or /run/shoal/shoal.sock)')
  .option('--tlscacert <file>', 'with -H tcp://: the cluster CA (from shoal ca client-cert)')
  .option('--tlscert <file>', 'with -H tcp://: the admin client certificate')
  .option('--tlskey <file>', 'with -H tcp://: the admin client key')
  .enablePositionalOptions();

let client: Client | undefined;
const connect = () => {
  const o = program.opts();
  return (client ??= new Client(daemonAddress(o.host), { ca: o.tlscacert, cert: o.tlscert, key: o.tlskey }));
};

for (const c of clusterCommands(connect)) program.addCommand(c);

program
  .command('info')
  .description('show what this daemon is')
  .option('--format <format>', '"table" or "json"', 'table')
  .action(async (opts) => {
    const info = await connect().info();
    if (opts.format === 'json') return void process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    process.stdout.write(
      [
        `Node ID: ${info.node_id}`,
        `Hostname: ${info.hostname}`,
        `Cluster: ${info.cluster_id || '(none: run shoal init or shoal join)'}`,
        `Role: ${info.role || '-'}`,
        `Manager: ${info.manager}`,
        `Leader: ${info.leader}`,
        `Address: ${info.advertise_addr || '-'}`,
        `Managers: ${info.managers.join(', ') || '-'}`,
        `Version: ${info.version}`,
      ].join('\n') + '\n',
    );
  });

program.addCommand(serviceCommand(connect));
program.addCommand(nodeCommand(connect));
program.addCommand(networkCommand(connect));
program.addCommand(caCommand(connect));
program.addCommand(imageCommand(connect));
for (const c of loginCommands(connect)) program.addCommand(c);

program
  .parseAsync(process.argv)
  .then(() => client?.close())
  .catch((err: unknown) => {
    const message = err instanceof ShoalError ? err.message : client ? client.explain(err).message : (err as Error).message;
    process.stderr.write(`Error: ${message}\n`);
    client?.close();
    process.exitCode = 1;
  });
