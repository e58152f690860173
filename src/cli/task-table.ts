import type { Task__Output } from '../gen/shoal/v1/Task';
import type { ListTasksResponse__Output } from '../gen/shoal/v1/ListTasksResponse';
import type { NetworkAttachment__Output } from '../gen/shoal/v1/NetworkAttachment';
import { taskName } from '../common/tasks';
import type { Client } from './client';
import { ago, type ListingOptions, printIdsOrJson, printTable, shortId, titleCase } from './format';

/** Each task with its overlay addresses, as `service ps --format json` and `service inspect` show them. */
export function withAddresses(listed: ListTasksResponse__Output): (Task__Output & { addresses: NetworkAttachment__Output[] })[] {
  const byTask = new Map(listed.task_networks.map((a) => [a.id, a.networks]));
  return listed.tasks.map((t) => ({ ...t, addresses: byTask.get(t.id) ?? [] }));
}

/**
 * The task listing `service ps` and `node ps` print, history rows under each slot's newest task.
 * An ADDRESSES column (each task's overlay addresses) is there when some task has one.
 */
export async function printTasks(client: Client, listed: ListTasksResponse__Output, opts: ListingOptions & { trunc: boolean }): Promise<void> {
  const tasks = withAddresses(listed);
  if (printIdsOrJson(opts, tasks, (t) => t.id)) return;
  const { nodes } = await client.listNodes();
  const hostnames = new Map(nodes.map((n) => [n.id, n.description!.hostname]));
  const addressed = tasks.some((t) => t.addresses.length);
  let lastSlot = '';
  printTable(
    ['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', ...(addressed ? ['ADDRESSES'] : []), 'ERROR'],
    tasks.map((t) => {
      const slot = `${t.service_id}.${t.slot || t.node_id}`;
      // As Docker does, history rows under a slot's newest task are marked with \_.
      const name = slot === lastSlot ? ` \\_ ${taskName(t)}` : taskName(t);
      lastSlot = slot;
      const err = t.status!.err || t.schedule_error;
      return [
        opts.trunc ? shortId(t.id) : t.id,
        name,
        t.spec!.container!.image,
        hostnames.get(t.node_id) ?? '',
        titleCase(t.desired_state),
        `${titleCase(t.status!.state)}${healthNote(t.status!.health)} ${ago(t.status!.timestamp)}`,
        ...(addressed ? [t.addresses.map((a) => a.address.split('/')[0]).join(',')] : []),
        err ? (opts.trunc && err.length > 60 ? `"${err.slice(0, 57)}…"` : `"${err}"`) : '',
      ];
    }),
  );
}

/** As `docker ps` shows it: "Running (healthy) 5 seconds ago", "Starting (health: starting) …". */
const healthNote = (health: string): string => (!health ? '' : health === 'starting' ? ' (health: starting)' : ` (${health})`);
