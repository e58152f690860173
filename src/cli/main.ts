import { Command } from 'commander';
import { ShoalError } from '../common/errors';
import { VERSION } from '../common/version';
import { Client, daemonAddress } from './client';
import { imageCommand } from './commands/image';
import { loginCommands } from './commands/login';
import { nodeCommand } from './commands/node';
import { serviceCommand } from './commands/service';

const program = new Command('shoal')
  .description('shoal: run replicated services on a cluster of nodes')
  .version(VERSION)
  .option('-H, --host <addr>', 'daemon socket or address (default $SHOAL_HOST or /run/shoal/shoal.sock)')
  .enablePositionalOptions();

let client: Client | undefined;
const connect = () => (client ??= new Client(daemonAddress(program.opts().host)));

program
  .command('init')
  .description('make this node the first manager of a new cluster')
  .action(async () => {
    const res = await connect().init();
    process.stdout.write(`Cluster initialized: ${res.cluster_id}\nThis node (${res.node_id}) is now a manager and a worker.\n`);
  });

program
  .command('info')
  .description('show what this daemon is')
  .option('--format <format>', '"table" or "json"', 'table')
  .action(async (opts) => {
    const info = await connect().info();
    if (opts.format === 'json') return void process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    process.stdout.write(
      `Node ID: ${info.node_id}\nCluster: ${info.cluster_id || '(none: run shoal init)'}\nManager: ${info.manager}\nLeader: ${info.leader}\nVersion: ${info.version}\n`,
    );
  });

program.addCommand(serviceCommand(connect));
program.addCommand(nodeCommand(connect));
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
