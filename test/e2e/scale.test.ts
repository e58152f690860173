import { describe, expect, it } from 'vitest';
import { apiOf, runningOf, tasksOf, waitFor } from './observe';
import { useE2eNode } from './use-node';
import { IDLE } from '../helpers/workloads';

const node = useE2eNode();
const replicas = async (service: string) => (await runningOf(node, service)).length;

describe('create and scale, waiting or not', () => {
  it('create -d returns with the service stored while it cannot converge, and it converges once it can', async () => {
    // Two replicas at most one per node: on one node, waiting for both could never end.
    const r = node.shoal('service', 'create', '-d', '--name', 'detached', '--replicas', '2', '--replicas-max-per-node', '1', 'shoal-test:latest', ...IDLE);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^[a-z0-9]{25}\n$/);
    // -d prints no progress: there is no wait to report on.
    expect(r.stderr).toBe('');
    const service = await apiOf(node).getService('detached');
    expect(service.id).toBe(r.stdout.trim());
    await waitFor('one replica of detached to run', async () => (await replicas('detached')) === 1);

    node.ok('service', 'update', '-d', '--replicas-max-per-node', '0', 'detached');
    await waitFor('both replicas of detached to run', async () => (await replicas('detached')) === 2);
  });

  it('scale -d returns before convergence, then the service converges', async () => {
    node.ok('service', 'create', '--name', 'web', '--replicas-max-per-node', '2', 'shoal-test:latest', ...IDLE);
    const r = node.shoal('service', 'scale', '-d', 'web=3');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('web scaled to 3\n');
    expect(r.stderr).toBe('');
    await waitFor('2 replicas of web to run and the third to wait with a reason', async () => {
      const tasks = (await tasksOf(node, 'web')).filter((t) => t.desired_state === 'RUNNING');
      return tasks.length === 3 && tasks.filter((t) => t.status!.state === 'RUNNING').length === 2 && tasks.some((t) => t.schedule_error);
    });
    expect(node.ok('service', 'ls')).toMatch(/web\s+replicated\s+2\/3\s/);

    node.ok('service', 'scale', '-d', 'web=2');
    await waitFor('web to run 2 replicas with nothing pending', async () => {
      const tasks = (await tasksOf(node, 'web')).filter((t) => t.desired_state === 'RUNNING');
      return tasks.length === 2 && tasks.every((t) => t.status!.state === 'RUNNING');
    });
    expect(node.containerIds()).toHaveLength(2);
  });

  it('scale with several SERVICE=N pairs scales each and waits for all', async () => {
    node.ok('service', 'create', '--name', 'one', 'shoal-test:latest', ...IDLE);
    node.ok('service', 'create', '--name', 'two', '--replicas', '3', 'shoal-test:latest', ...IDLE);
    const r = node.shoal('service', 'scale', 'one=3', 'two=1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('one scaled to 3\ntwo scaled to 1\n');
    expect(r.stderr).toMatch(/verify: service one converged\n[\s\S]*verify: service two converged\n$/);
    // It waited: both are where they were asked to be when it returns.
    expect(await replicas('one')).toBe(3);
    expect(await replicas('two')).toBe(1);
    expect(node.containerIds()).toHaveLength(4);
    expect(node.ok('service', 'ls')).toMatch(/one\s+replicated\s+3\/3\s[\s\S]*two\s+replicated\s+1\/1\s/);
  });

  it('scale -d with several pairs returns at once, then both converge', async () => {
    node.ok('service', 'create', '-d', '--name', 'a', 'shoal-test:latest', ...IDLE);
    node.ok('service', 'create', '-d', '--name', 'b', 'shoal-test:latest', ...IDLE);
    expect(node.ok('service', 'scale', '-d', 'a=2', 'b=0')).toBe('a scaled to 2\nb scaled to 0\n');
    await waitFor('a to run 2 replicas and b none', async () => (await replicas('a')) === 2 && (await replicas('b')) === 0 && node.containerIds().length === 2);
  });
});
