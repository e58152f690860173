import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import type { Client } from '../client';
import { backupCommand, restoreCommand } from './backup';

type Connect = () => Client;

function initCommand(connect: Connect): Command {
  return new Command('init')
    .description('make this node the first manager of a new cluster')
    .option('--advertise-addr <ip>', 'the address other nodes reach this one at (default: the listen address, or the default route’s)')
    .action(async (opts) => {
      const res = await connect().init(opts.advertiseAddr ?? '');
      process.stdout.write(
        `Cluster initialized: current node (${res.node_id}) is now a manager.\n\n` +
          `To add a worker to this cluster, run the following command:\n\n    ${res.worker_join_command}\n\n` +
          "To add a manager to this cluster, run 'shoal join-token manager' and follow the instructions.\n",
      );
    });
}

function joinCommand(connect: Connect): Command {
  return new Command('join')
    .description('join this node to a cluster as a worker or a manager, as the token says')
    .argument('<host:port>', 'a manager’s address')
    .requiredOption('--token <token>', 'the join token (shoal join-token worker|manager on a manager)')
    .option('--advertise-addr <ip>', 'the address other nodes reach this one at (default: the one that routes to the manager)')
    .action(async (remote: string, opts) => {
      const res = await connect().join({ token: opts.token, remote_addr: remote, advertise_addr: opts.advertiseAddr ?? '' });
      process.stdout.write(`This node joined a cluster as a ${res.role}.\n`);
    });
}

function joinTokenCommand(connect: Connect): Command {
  return new Command('join-token')
    .description('print (or rotate) the token that joins a node as a worker or a manager')
    .argument('<role>', 'worker or manager')
    .option('-q, --quiet', 'print only the token')
    .option('--rotate', 'replace the token; the old one stops working at once')
    .action(async (role: string, opts) => {
      const res = await connect().joinToken(role, !!opts.rotate);
      if (opts.quiet) return void process.stdout.write(`${res.token}\n`);
      if (opts.rotate) process.stdout.write(`Successfully rotated ${role} join token.\n\n`);
      process.stdout.write(`To add a ${role} to this cluster, run the following command:\n\n    shoal join --token ${res.token} ${res.addr}\n`);
    });
}

function leaveCommand(connect: Connect): Command {
  return new Command('leave')
    .description('leave the cluster; this node’s containers are removed')
    .option('-f, --force', 'leave even as a manager, or when no manager can be told')
    .action(async (opts) => {
      await connect().leave(!!opts.force);
      process.stdout.write('Node left the cluster.\n');
    });
}

/** init, join, join-token and leave, also as `shoal swarm …` for Docker habits; backup and restore only there. */
export function clusterCommands(connect: Connect): Command[] {
  const make = () => [initCommand(connect), joinCommand(connect), joinTokenCommand(connect), leaveCommand(connect)];
  const swarm = new Command('swarm').description('init, join, join-token and leave (Docker’s spelling), and backup and restore of the cluster state');
  for (const c of [...make(), backupCommand(connect), restoreCommand(connect)]) swarm.addCommand(c);
  return [...make(), swarm];
}

/** `shoal ca client-cert --out DIR`: an admin certificate for remote CLIs (-H tcp://… --tls*). */
export function caCommand(connect: Connect): Command {
  const ca = new Command('ca').description('the cluster’s certificate authority');
  ca.command('client-cert')
    .description('issue an admin client certificate (ca.pem, cert.pem, key.pem) for a remote CLI')
    .requiredOption('--out <dir>', 'directory to write the files to')
    .action(async (opts) => {
      const res = await connect().clientCert();
      fs.mkdirSync(opts.out, { recursive: true, mode: 0o700 });
      fs.writeFileSync(path.join(opts.out, 'ca.pem'), res.ca_pem);
      fs.writeFileSync(path.join(opts.out, 'cert.pem'), res.cert_pem);
      fs.writeFileSync(path.join(opts.out, 'key.pem'), res.key_pem, { mode: 0o600 });
      const dir = path.resolve(opts.out);
      process.stdout.write(
        `Wrote ${dir}/{ca,cert,key}.pem. Use them with:\n    shoal -H tcp://MANAGER:2377 --tlscacert ${dir}/ca.pem --tlscert ${dir}/cert.pem --tlskey ${dir}/key.pem …\n`,
      );
    });
  return ca;
}
