import { Command } from 'commander';
import { invalidArgument } from '../../common/errors';
import type { Client } from '../client';
import { configDir, normalizeRegistry, removeCredentials, storeCredentials } from '../credentials';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  // As docker does: one trailing newline (from echo or a file) is not part of the password.
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export function loginCommands(connect: () => Client): Command[] {
  const login = new Command('login')
    .description('check credentials against a registry and store them for this user (~/.shoal/config.json, mode 0600)')
    .argument('<registry>', 'registry host[:port]')
    .requiredOption('-u, --username <user>', 'username')
    .option('--password-stdin', 'read the password from standard input')
    .option('-p, --password <password>', 'the password (visible to other users in ps; prefer --password-stdin)')
    .option('--insecure-registry', 'speak plain HTTP to this registry for the check')
    .action(async (name: string, opts) => {
      const registry = normalizeRegistry(name);
      if (opts.passwordStdin && opts.password !== undefined) throw invalidArgument('--password and --password-stdin are mutually exclusive');
      if (!opts.passwordStdin && opts.password === undefined) throw invalidArgument('give the password on standard input with --password-stdin');
      if (opts.password !== undefined) process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
      const password: string = opts.passwordStdin ? await readStdin() : opts.password;
      if (!password) throw invalidArgument('the password is empty');
      const auth = { registry, username: opts.username as string, password };
      // The daemon checks them, from where the pulls will happen; nothing is stored if they are refused.
      await connect().checkLogin({ registry_auth: auth, insecure_registry: Boolean(opts.insecureRegistry) });
      storeCredentials(auth);
      process.stdout.write(`Login Succeeded (credentials stored in ${configDir()}/config.json)\n`);
    });
  const logout = new Command('logout')
    .description('remove the stored credentials for a registry')
    .argument('<registry>', 'registry host[:port]')
    .action(async (name: string) => {
      const registry = normalizeRegistry(name);
      const removed = removeCredentials(registry);
      process.stdout.write(removed ? `Removing login credentials for ${registry}\n` : `Not logged in to ${registry}\n`);
    });
  return [login, logout];
}
