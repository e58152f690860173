import { status } from '@grpc/grpc-js';
import { Command } from 'commander';
import type { Service__Output } from '../../gen/shoal/v1/Service';
import { invalidArgument, ShoalError } from '../../common/errors';
import { taskName } from '../../common/tasks';
import type { Client } from '../client';
import { waitForConvergence } from '../converge';
import { ago, listingOptions, printIdsOrJson, printJson, printTable, shortId, titleCase } from '../format';
import { applyRolloutFlags, rolloutOptions } from './rollout-flags';
import { waitForRollout } from '../rollout';
import { applyTemplateFlags, blankSpec, collect, integer, labelMap, placementPrefs, serviceMode, sinceTime, templateOptions } from './service-flags';
import { credentialsForImage } from '../credentials';
import { printTasks, withAddresses } from '../task-table';
import { applyPublishFlags, portsText, publishOptions, publishUpdateOptions } from './publish-flags';
import type { ListTasksResponse__Output } from '../../gen/shoal/v1/ListTasksResponse';
import type { RegistryAuth } from '../../gen/shoal/v1/RegistryAuth';

/** --with-registry-auth: the stored credentials for the image's registry, or an error saying to log in. */
function registryAuth(image: string, wanted: boolean): RegistryAuth | null {
  if (!wanted) return null;
  const creds = credentialsForImage(image);
  if (!creds) {
    const registry = image.split('/')[0];
    throw invalidArgument(`--with-registry-auth: no credentials stored for registry ${registry}; run \`shoal login ${registry}\` first`);
  }
  return creds;
}

type Connect = () => Client;

export function serviceCommand(connect: Connect): Command {
  const service = new Command('service').description('manage services').enablePositionalOptions();

  publishOptions(rolloutOptions(templateOptions(
    service
      .command('create')
      .description('create a service and wait for it to converge')
      .argument('<image>', 'image reference, e.g. shoal-test:latest')
      .argument('[command...]', 'command and arguments (replace the image CMD)')
      .requiredOption('--name <name>', 'service name')
      .option('--mode <mode>', 'replicated (a number of tasks) or global (one task per node)', serviceMode, 'replicated')
      .option('--replicas <n>', 'number of tasks (default 1)', integer('--replicas'))
      .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable)', collect, [])
      .option('--entrypoint <cmd>', 'replace the image ENTRYPOINT (space-separated)')
      .option('--constraint <expr>', 'placement constraint, e.g. node.hostname==a (repeatable)', collect, [])
      .option('--placement-pref <pref>', 'spread=node.labels.NAME: spread tasks over the label’s values (repeatable)', placementPrefs('--placement-pref'), [])
      .option('-l, --label <KEY=VALUE>', 'service label (repeatable)', collect, [])
      .option('--container-label <KEY=VALUE>', 'container label (repeatable)', collect, [])
      .option('--network <network>', 'attach the tasks to an overlay network (repeatable)', collect, [])
      .option('--with-registry-auth', 'send the credentials of `shoal login` for the image’s registry to the nodes that pull it')
      .option('-d, --detach', 'return at once instead of waiting for convergence')
      .option('-q, --quiet', 'print only the service ID'),
  )))
    .passThroughOptions()
    .action(async (image: string, command: string[], opts) => {
      const client = connect();
      const spec = blankSpec();
      spec.name = opts.name;
      spec.labels = labelMap(opts.label);
      if (opts.mode === 'global') {
        if (opts.replicas !== undefined) throw invalidArgument('--replicas can only be used with replicated mode');
        if (opts.replicasMaxPerNode !== undefined) throw invalidArgument('--replicas-max-per-node can only be used with replicated mode');
        spec.mode = { mode: 'global', global: {} };
      } else {
        spec.mode = { mode: 'replicated', replicated: { replicas: opts.replicas ?? 1 } };
      }
      const c = spec.task_template!.container!;
      c.image = image;
      c.args = command;
      c.env = opts.env;
      c.labels = labelMap(opts.containerLabel);
      if (opts.entrypoint !== undefined) c.command = opts.entrypoint.split(/\s+/).filter(Boolean);
      spec.task_template!.placement!.constraints = opts.constraint;
      spec.task_template!.placement!.preferences = opts.placementPref.map((spread: string) => ({ spread }));
      spec.task_template!.networks = opts.network.map((target: string) => ({ target }));
      applyTemplateFlags(spec, opts, true);
      applyRolloutFlags(spec, opts);
      applyPublishFlags(spec, opts);
      const { service: created, warnings } = await client.createService({ spec, registry_auth: registryAuth(image, !!opts.withRegistryAuth) });
      printWarnings(warnings);
      process.stdout.write(`${created.id}\n`);
      if (!opts.detach) await waitForConvergence(client, created.id, !!opts.quiet);
    });

  listingOptions(service.command('ls').description('list services'), 'service')
    .action(async (opts) => {
      const { services } = await connect().listServices();
      if (printIdsOrJson(opts, services, (s) => s.service!.id, (s) => ({ ...s.service, running: s.running, desired: s.desired }))) return;
      printTable(
        ['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE', 'PORTS'],
        services.map(({ service: s, running, desired }) => [
          shortId(s!.id),
          s!.spec!.name,
          s!.spec!.mode!.global ? 'global' : 'replicated',
          `${running}/${desired}`,
          s!.spec!.task_template!.container!.image,
          portsText(s!.spec!.endpoint_spec?.ports ?? []),
        ]),
      );
    });

  listingOptions(service.command('ps').description('list the tasks of one or more services').argument('<service...>', 'service names or IDs'), 'task')
    .option('--no-trunc', 'do not truncate IDs and errors')
    .action(async (refs: string[], opts) => {
      const client = connect();
      const listed: ListTasksResponse__Output = { tasks: [], task_networks: [] };
      for (const ref of refs) {
        const { tasks, task_networks } = await client.listTasks({ service: ref });
        listed.tasks.push(...tasks);
        listed.task_networks.push(...task_networks);
      }
      // What keeps a service from converging is on the service, not on a task (it may have none).
      for (const ref of refs) {
        const s = await client.getService(ref);
        for (const e of s.errors ?? []) process.stderr.write(`service ${s.spec!.name} is not converging: ${e.loop}: ${e.message} (first seen ${ago(e.since).toLowerCase()})\n`);
      }
      await printTasks(client, listed, opts);
    });

  service
    .command('inspect')
    .description('show the full spec and state of services, as JSON')
    .argument('<service...>', 'service names or IDs')
    .action(async (refs: string[]) => {
      const client = connect();
      const out: unknown[] = [];
      for (const ref of refs) {
        const s = await client.getService(ref);
        const tasks = withAddresses(await client.listTasks({ service: s.id }));
        out.push({
          ...s,
          tasks: tasks.map((t) => ({ id: t.id, slot: t.slot, node_id: t.node_id, desired_state: t.desired_state, status: t.status, addresses: t.addresses })),
        });
      }
      printJson(out);
    });

  service
    .command('scale')
    .description('set the replica count of services: SERVICE=REPLICAS ...')
    .argument('<service=replicas...>')
    .option('-d, --detach', 'return at once instead of waiting for convergence')
    .action(async (pairs: string[], opts) => {
      const client = connect();
      const wanted = pairs.map((p) => {
        const m = /^([^=]+)=(.*)$/.exec(p);
        if (!m) throw invalidArgument(`invalid scale argument "${p}": use SERVICE=REPLICAS`);
        if (!/^\d+$/.test(m[2])) throw invalidArgument(`invalid replicas "${m[2]}" for ${m[1]}: must be a non-negative integer`);
        return { ref: m[1], replicas: Number(m[2]) };
      });
      for (const { ref, replicas } of wanted) {
        const s = await updateWithRetry(client, ref, (spec) => {
          if (spec.mode!.global) throw invalidArgument(`${spec.name}: scale can only be used with replicated mode`);
          spec.mode = { mode: 'replicated', replicated: { replicas } };
        });
        process.stdout.write(`${s.spec!.name} scaled to ${replicas}\n`);
        if (!opts.detach) await waitForConvergence(client, s.id, false);
      }
    });

  publishUpdateOptions(rolloutOptions(templateOptions(
    service
      .command('update')
      .description('change a service and wait for it to converge')
      .argument('<service>', 'service name or ID')
      .option('--replicas <n>', 'number of tasks', integer('--replicas'))
      .option('--image <image>', 'new image reference')
      .option('--args <args>', 'new command arguments (space-separated)')
      .option('--env-add <KEY=VALUE>', 'add or change an environment variable (repeatable)', collect, [])
      .option('--env-rm <KEY>', 'remove an environment variable (repeatable)', collect, [])
      .option('--constraint-add <expr>', 'add a placement constraint (repeatable)', collect, [])
      .option('--constraint-rm <expr>', 'remove a placement constraint (repeatable)', collect, [])
      .option('--placement-pref-add <pref>', 'add a spread=node.labels.NAME preference (repeatable)', placementPrefs('--placement-pref-add'), [])
      .option('--placement-pref-rm <pref>', 'remove a spread=node.labels.NAME preference (repeatable)', placementPrefs('--placement-pref-rm'), [])
      .option('--network-add <network>', 'attach the tasks to a network as well (repeatable)', collect, [])
      .option('--network-rm <network>', 'detach the tasks from a network (repeatable)', collect, [])
      .option('--with-registry-auth', 'send the credentials of `shoal login` for the image’s registry to the nodes that pull it')
      .option('-d, --detach', 'return at once instead of waiting for convergence')
      .option('-q, --quiet', 'print only the service ID'),
  ))).action(async (ref: string, opts) => {
    const client = connect();
    let auth: RegistryAuth | null = null;
    // The spec holds network ids; a name given to --network-rm is looked up once.
    const leaving: { ref: string; id: string }[] = [];
    for (const n of opts.networkRm as string[]) {
      try {
        leaving.push({ ref: n, id: (await client.getNetwork(n)).id });
      } catch (err) {
        throw invalidArgument(`--network-rm: ${(err as Error).message}`);
      }
    }
    const s = await updateWithRetry(client, ref, (spec) => {
      const c = spec.task_template!.container!;
      if (opts.withRegistryAuth) auth = registryAuth(opts.image ?? c.image, true);
      if (opts.replicas !== undefined) {
        if (spec.mode!.global) throw invalidArgument('--replicas can only be used with replicated mode');
        spec.mode = { mode: 'replicated', replicated: { replicas: opts.replicas } };
      }
      if (opts.image !== undefined) c.image = opts.image;
      if (opts.args !== undefined) c.args = opts.args.split(/\s+/).filter(Boolean);
      const removed = new Set<string>([...opts.envRm, ...opts.envAdd.map((e: string) => e.split('=', 1)[0])]);
      c.env = [...c.env.filter((e) => !removed.has(e.split('=', 1)[0])), ...opts.envAdd];
      const p = spec.task_template!.placement!;
      p.constraints = [...p.constraints.filter((x) => !opts.constraintRm.includes(x)), ...opts.constraintAdd];
      p.preferences = [
        ...p.preferences.filter((x) => !opts.placementPrefRm.includes(x.spread)),
        ...opts.placementPrefAdd.map((spread: string) => ({ spread })),
      ];
      const t = spec.task_template!;
      for (const l of leaving) {
        if (!t.networks.some((n) => n.target === l.id)) throw invalidArgument(`--network-rm: service ${spec.name} is not on network ${l.ref}`);
      }
      t.networks = [...t.networks.filter((n) => !leaving.some((l) => l.id === n.target)), ...opts.networkAdd.map((target: string) => ({ target }))];
      applyTemplateFlags(spec, opts, false);
      applyRolloutFlags(spec, opts);
      applyPublishFlags(spec, opts);
    }, () => auth);
    process.stdout.write(`${s.id}\n`);
    if (opts.detach) return;
    // The daemon clears the update status when the change starts a rollout (or resumes a paused one).
    if (!s.update_status) {
      const ended = await waitForRollout(client, s.id, !!opts.quiet);
      if (ended.state === 'rollback_completed') {
        throw new ShoalError(status.FAILED_PRECONDITION, `update of service ${s.spec!.name} was rolled back: ${ended.message}`);
      }
    }
    await waitForConvergence(client, s.id, !!opts.quiet);
  });

  service
    .command('rollback')
    .description('restore the previous spec of a service and wait for it to roll out')
    .argument('<service>', 'service name or ID')
    .option('-d, --detach', 'return at once instead of waiting for the rollback')
    .option('-q, --quiet', 'print only the service ID')
    .action(async (ref: string, opts) => {
      const client = connect();
      const { service: s } = await client.rollbackService(ref);
      process.stdout.write(`${s.id}\n`);
      if (opts.detach) return;
      await waitForRollout(client, s.id, !!opts.quiet);
      await waitForConvergence(client, s.id, !!opts.quiet);
    });

  service
    .command('rm')
    .alias('remove')
    .description('remove services')
    .argument('<service...>', 'service names or IDs')
    .action(async (refs: string[]) => {
      const client = connect();
      for (const ref of refs) {
        await client.removeService(ref);
        process.stdout.write(`${ref}\n`);
      }
    });

  service
    .command('logs')
    .description('print the logs of a service’s tasks, each line prefixed with its task')
    .argument('<service>', 'service name or ID')
    .option('-f, --follow', 'keep printing new lines')
    .option('-n, --tail <lines>', 'lines from the end of each task’s log ("all" for everything)', 'all')
    .option('-t, --timestamps', 'show timestamps')
    .option('--since <time>', 'only lines since then: a duration back from now (10m), a Unix time or an RFC 3339 date', sinceTime('--since'))
    .action(async (ref: string, opts) => {
      const client = connect();
      const tail = opts.tail === 'all' ? -1 : integer('--tail')(opts.tail);
      await new Promise<void>((resolve, reject) => {
        const call = client.control.ServiceLogs({ service: ref, follow: !!opts.follow, tail, since_ms: opts.since ?? 0 });
        call.on('data', (l) => {
          if (l.warning) return void process.stderr.write(`warning: ${l.warning}\n`);
          const out = l.stream === 'stderr' ? process.stderr : process.stdout;
          out.write(`${l.task_name}    | ${opts.timestamps ? `${l.timestamp} ` : ''}${l.line}\n`);
        });
        call.on('error', (err) => reject(client.explain(err)));
        call.on('end', () => resolve());
        process.once('SIGINT', () => {
          call.cancel();
          resolve();
        });
      });
    });

  return service;
}

const printWarnings = (warnings: string[]) => warnings.forEach((w) => process.stderr.write(`warning: ${w}\n`));

/** Read-modify-write with compare-and-swap; a concurrent change makes it read again, not overwrite. */
async function updateWithRetry(
  client: Client,
  ref: string,
  change: (spec: NonNullable<Service__Output['spec']>) => void,
  auth: () => RegistryAuth | null = () => null,
): Promise<Service__Output> {
  for (let attempt = 0; ; attempt++) {
    const current = await client.getService(ref);
    const spec = structuredClone(current.spec!);
    change(spec);
    try {
      const { service, warnings } = await client.updateService({ service: current.id, version: current.version, spec, registry_auth: auth() });
      printWarnings(warnings);
      return service;
    } catch (err) {
      if (attempt >= 3 || (err as { code?: number }).code !== status.ABORTED) throw err;
    }
  }
}
