import type { Task__Output } from '../gen/shoal/v1/Task';
import { taskName } from '../common/tasks';
import type { Client } from './client';
import { ago, type ListingOptions, printIdsOrJson, printTable, shortId, titleCase } from './format';

/** The task listing `service ps` and `node ps` print, history rows under each slot's newest task. */
export async function printTasks(client: Client, tasks: Task__Output[], opts: ListingOptions & { trunc: boolean }): Promise<void> {
  if (printIdsOrJson(opts, tasks, (t) => t.id)) return;
  const { nodes } = await client.listNodes();
  const hostnames = new Map(nodes.map((n) => [n.id, n.description!.hostname]));
  let lastSlot = '';
  printTable(
    ['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR'],
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
        err ? (opts.trunc && err.length > 60 ? `"${err.slice(0, 57)}…"` : `"${err}"`) : '',
      ];
    }),
  );
}

/** As `docker ps` shows it: "Running (healthy) 5 seconds ago", "Starting (health: starting) …". */
const healthNote = (health: string): string => (!health ? '' : health === 'starting' ? ' (health: starting)' : ` (${health})`);
