import { Command } from 'commander';
import type { Node__Output } from '../../gen/shoal/v1/Node';
import { invalidArgument } from '../../common/errors';
import type { Client } from '../client';
import { listingOptions, printIdsOrJson, printJson, printTable, shortId, titleCase } from '../format';
import { printTasks } from '../task-table';
import { collect } from './service-flags';

type Connect = () => Client;

function managerStatus(n: Node__Output): string {
  if (n.spec!.role !== 'manager') return '';
  if (n.manager_status?.leader) return 'Leader';
  return titleCase(n.manager_status?.reachability || 'unreachable');
}

/** Applies --label-add K=V and --label-rm K to a node's labels. */
function editLabels(labels: Record<string, string>, add: string[], rm: string[]): Record<string, string> {
  const next = { ...labels };
  for (const kv of add) {
    const at = kv.indexOf('=');
    const key = at < 0 ? kv : kv.slice(0, at);
    if (!key) throw invalidArgument(`--label-add: "${kv}" is not KEY=VALUE`);
    next[key] = at < 0 ? '' : kv.slice(at + 1);
  }
  for (const key of rm) {
    if (!(key in next)) throw invalidArgument(`--label-rm: the node has no label "${key}"`);
    delete next[key];
  }
  return next;
}

async function update(client: Client, ref: string, change: (n: Node__Output) => Partial<Node__Output['spec']>): Promise<Node__Output> {
  const node = await client.getNode(ref);
  return client.updateNode({ node: node.id, version: node.version, spec: { ...node.spec!, ...change(node) } });
}

export function nodeCommand(connect: Connect): Command {
  const node = new Command('node').description('manage nodes');
  listingOptions(node.command('ls').description('list the nodes of the cluster'), 'node').action(async (opts) => {
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
        managerStatus(n),
        n.description!.engine_version,
      ]),
    );
  });

  node
    .command('inspect')
    .description('show nodes in full, as JSON')
    .argument('<node...>', 'node IDs, ID prefixes or hostnames')
    .action(async (refs: string[]) => {
      const client = connect();
      printJson(await Promise.all(refs.map((r) => client.getNode(r))));
    });

  listingOptions(node.command('ps').description('list the tasks on a node (default: this one)'), 'task')
    .argument('[node]', 'node ID, ID prefix or hostname')
    .option('--no-trunc', 'do not truncate IDs and errors')
    .action(async (ref: string | undefined, opts) => {
      const client = connect();
      const id = ref ? (await client.getNode(ref)).id : (await client.info()).node_id;
      await printTasks(client, await client.listTasks({ service: '', node_id: id }), opts);
    });

  node
    .command('update')
    .description('change a node’s availability or labels')
    .argument('<node>', 'node ID, ID prefix or hostname')
    .option('--availability <a>', 'active, pause (no new tasks) or drain (tasks move elsewhere)')
    .option('--label-add <KEY=VALUE>', 'add or change a label (repeatable)', collect, [])
    .option('--label-rm <KEY>', 'remove a label (repeatable)', collect, [])
    .option('--role <role>', 'worker or manager')
    .action(async (ref: string, opts) => {
      const n = await update(connect(), ref, (cur) => ({
        availability: opts.availability ?? cur.spec!.availability,
        role: opts.role ?? cur.spec!.role,
        labels: editLabels(cur.spec!.labels, opts.labelAdd, opts.labelRm),
      }));
      process.stdout.write(`${n.id}\n`);
    });

  for (const [verb, role] of [
    ['promote', 'manager'],
    ['demote', 'worker'],
  ] as const) {
    node
      .command(verb)
      .description(`make nodes ${role === 'manager' ? 'managers' : 'workers only'}`)
      .argument('<node...>', 'node IDs, ID prefixes or hostnames')
      .action(async (refs: string[]) => {
        const client = connect();
        for (const ref of refs) {
          const n = await update(client, ref, () => ({ role }));
          process.stdout.write(`Node ${n.description?.hostname || shortId(n.id)} ${verb}d to a ${role} in the cluster.\n`);
        }
      });
  }

  node
    .command('rm')
    .description('remove nodes from the cluster; their tasks are rescheduled')
    .argument('<node...>', 'node IDs, ID prefixes or hostnames')
    .option('-f, --force', 'remove even a node that is still Ready')
    .action(async (refs: string[], opts) => {
      const client = connect();
      for (const ref of refs) process.stdout.write(`${(await client.removeNode(ref, !!opts.force)).id}\n`);
    });
  return node;
}
