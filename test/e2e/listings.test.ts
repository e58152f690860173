import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiOf, runningOf, waitFor } from './observe';
import { useE2eNode } from './use-node';
import { IDLE } from '../helpers/workloads';

const node = useE2eNode();
const CLI = path.join(__dirname, '../../dist/src/cli/main.js');
const lines = (out: string) => out.split('\n').filter(Boolean);

/** The CLI with no -H, and SHOAL_HOST as given (unset when undefined). */
function withHost(host: string | undefined, ...args: string[]) {
  const env = { ...process.env };
  delete env.SHOAL_HOST;
  if (host !== undefined) env.SHOAL_HOST = host;
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('listings', () => {
  it('service ls: a table, -q the IDs, --format json the services with their counts', async () => {
    node.ok('service', 'create', '--name', 'alpha', '--replicas', '2', 'shoal-test:latest', ...IDLE);
    node.ok('service', 'create', '-d', '--name', 'beta', '--replicas', '0', 'shoal-test:latest', ...IDLE);
    const { services } = await apiOf(node).listServices();
    const ids = services.map((s) => s.service!.id);

    expect(lines(node.ok('service', 'ls', '-q'))).toEqual(ids);
    const json = JSON.parse(node.ok('service', 'ls', '--format', 'json'));
    expect(json.map((s: { id: string; spec: { name: string }; running: number; desired: number }) => [s.id, s.spec.name, s.running, s.desired])).toEqual([
      [ids[0], 'alpha', 2, 2],
      [ids[1], 'beta', 0, 0],
    ]);
    expect(lines(node.ok('service', 'ls'))).toEqual([
      expect.stringMatching(/^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS$/),
      expect.stringMatching(new RegExp(`^${ids[0].slice(0, 12)}\\s+alpha\\s+replicated\\s+2/2\\s+shoal-test:latest$`)),
      expect.stringMatching(new RegExp(`^${ids[1].slice(0, 12)}\\s+beta\\s+replicated\\s+0/0\\s+shoal-test:latest$`)),
    ]);
  });

  it('service ps: -q the task IDs, --format json the tasks, of one or more services', async () => {
    node.ok('service', 'create', '--name', 'alpha', '--replicas', '2', 'shoal-test:latest', ...IDLE);
    node.ok('service', 'create', '--name', 'beta', 'shoal-test:latest', ...IDLE);
    const alpha = (await apiOf(node).listTasks({ service: 'alpha' })).tasks;
    const beta = (await apiOf(node).listTasks({ service: 'beta' })).tasks;
    expect(alpha).toHaveLength(2);

    expect(lines(node.ok('service', 'ps', '-q', 'alpha'))).toEqual(alpha.map((t) => t.id));
    expect(lines(node.ok('service', 'ps', '-q', 'alpha', 'beta'))).toEqual([...alpha, ...beta].map((t) => t.id));
    const json = JSON.parse(node.ok('service', 'ps', '--format', 'json', 'alpha', 'beta'));
    expect(json.map((t: { id: string; service_name: string; slot: number; status: { state: string } }) => [t.id, t.service_name, t.slot, t.status.state])).toEqual(
      [...alpha, ...beta].map((t) => [t.id, t.service_name, t.slot, 'RUNNING']),
    );
    const table = lines(node.ok('service', 'ps', '--no-trunc', 'beta'));
    expect(table[0]).toMatch(/^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR$/);
    expect(table.slice(1)).toEqual([expect.stringMatching(new RegExp(`^${beta[0].id}\\s+beta\\.1\\s+shoal-test:latest\\s+\\S+\\s+Running\\s+Running `))]);
  });

  it('node ps: -q the IDs, --format json the tasks on this node', async () => {
    node.ok('service', 'create', '--name', 'alpha', '--replicas', '2', 'shoal-test:latest', ...IDLE);
    const info = await apiOf(node).info();
    const tasks = (await apiOf(node).listTasks({ service: '', node_id: info.node_id })).tasks;
    expect(tasks).toHaveLength(2);
    expect(lines(node.ok('node', 'ps', '-q'))).toEqual(tasks.map((t) => t.id));
    expect(lines(node.ok('node', 'ps', '-q', info.node_id))).toEqual(tasks.map((t) => t.id));
    const json = JSON.parse(node.ok('node', 'ps', '--format', 'json'));
    expect(json.map((t: { id: string; node_id: string }) => [t.id, t.node_id])).toEqual(tasks.map((t) => [t.id, info.node_id]));
  });

  it('node ls: -q the node ID, --format json the node', async () => {
    const info = await apiOf(node).info();
    expect(node.ok('node', 'ls', '-q')).toBe(`${info.node_id}\n`);
    const json = JSON.parse(node.ok('node', 'ls', '--format', 'json'));
    expect(json).toHaveLength(1);
    expect(json[0]).toMatchObject({ id: info.node_id, spec: { role: 'manager', availability: 'active' }, status: { state: 'NODE_READY' } });
    expect(lines(node.ok('node', 'ls'))[1]).toMatch(new RegExp(`^${info.node_id} \\*\\s+\\S+\\s+Ready\\s+Active\\s+Leader\\s+${info.version}$`));
  });

  it('image ls: -q the image IDs, --format json the images', async () => {
    const { images } = await apiOf(node).listImages();
    expect(images.map((i) => i.tags)).toEqual([['shoal-test:latest']]);
    expect(node.ok('image', 'ls', '-q')).toBe(`${images[0].id}\n`);
    const json = JSON.parse(node.ok('image', 'ls', '--format', 'json'));
    expect(json).toEqual([expect.objectContaining({ id: images[0].id, digest: images[0].digest, tags: ['shoal-test:latest'] })]);
    expect(lines(node.ok('image', 'ls'))[1]).toMatch(new RegExp(`^shoal-test\\s+latest\\s+${images[0].id.slice(7, 19)}\\s`));
  });

  it('info --format json says what the daemon is', () => {
    const info = JSON.parse(node.ok('info', '--format', 'json'));
    expect(info).toMatchObject({ manager: true, leader: true, node_id: expect.stringMatching(/^[a-z0-9]{25}$/), cluster_id: expect.stringMatching(/^[a-z0-9]{25}$/) });
  });

  it('every listing refuses a --format it does not know, naming the values it takes', () => {
    for (const cmd of [['service', 'ls'], ['service', 'ps', 'x'], ['node', 'ls'], ['node', 'ps'], ['image', 'ls']]) {
      const r = node.shoal(...cmd, '--format', 'yaml');
      expect(r.code, cmd.join(' ')).not.toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/--format <format>' argument 'yaml' is invalid\. must be "table" or "json"/);
    }
  });

  it('SHOAL_HOST selects the daemon socket when -H is not given; -H wins over it', async () => {
    node.ok('service', 'create', '--name', 'viaenv', 'shoal-test:latest', ...IDLE);
    const id = (await apiOf(node).getService('viaenv')).id;
    const viaEnv = withHost(node.socket, 'service', 'ls', '-q');
    expect(viaEnv).toMatchObject({ code: 0, stdout: `${id}\n` });

    const elsewhere = path.join(node.dir, 'no-daemon.sock');
    const refused = withHost(elsewhere, 'service', 'ls');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toBe(`Error: cannot connect to the shoal daemon at ${elsewhere}: is shoald running? Start it as root with \`shoald &\`\n`);
    expect(withHost(elsewhere, '-H', node.socket, 'service', 'ls', '-q')).toMatchObject({ code: 0, stdout: `${id}\n` });

    // Actions go where it points too.
    expect(withHost(node.socket, 'service', 'scale', 'viaenv=2').code).toBe(0);
    await waitFor('viaenv to run 2 replicas', async () => (await runningOf(node, 'viaenv')).length === 2);
  });
});
