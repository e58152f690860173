import { describe, expect, it } from 'vitest';
import { IDLE, thenIdle } from '../helpers/workloads';
import { configuredImage } from './images';
import { apiOf, healthyOf, runningOf } from './observe';
import { useE2eNode } from './use-node';

const node = useE2eNode();
// Short intervals keep the tests quick; the rules do not depend on them.
const QUICK = ['--health-interval', '500ms', '--health-timeout', '2s'];

describe('health check specs', () => {
  it('an update whose new tasks turn unhealthy rolls back, per its failure action, and ends on the old spec', async () => {
    node.ok('service', 'create', '--name', 'rb', '--replicas', '2', '--health-cmd', 'true', '--update-failure-action', 'rollback', '--update-monitor', '1s', '--rollback-monitor', '500ms', ...QUICK, 'shoal-test:latest', ...IDLE);
    const created = await apiOf(node).getService('rb');
    const stderr = node.fails('service', 'update', '--health-cmd', 'echo broken; exit 3', '--health-retries', '1', 'rb');
    expect(stderr.trim().split('\n').at(-1)).toMatch(
      /^Error: update of service rb was rolled back: task rb\.1 \(\w+\) failed: unhealthy container: 1 health check in a row failed; the last: exit status 3: broken; 1 of 2 updated tasks failed, more than the max failure ratio 0$/,
    );
    const s = await apiOf(node).getService('rb');
    expect(s.update_status!.state).toBe('rollback_completed');
    expect(s.spec_version).toBe(created.spec_version);
    expect(s.spec!.task_template!.container!.healthcheck!.test).toEqual(['CMD-SHELL', 'true']);
    const serving = await healthyOf(node, 'rb');
    expect(serving.map((t) => t.spec_version)).toEqual([created.spec_version, created.spec_version]);
  });

  it("runs the image's HEALTHCHECK unless --no-healthcheck, and refuses a bad check, storing nothing", async () => {
    const ns = (ms: number) => ms * 1e6;
    const tar = configuredImage(node, 'checked:1', { Healthcheck: { Test: ['CMD-SHELL', 'test -e /tmp/ready'], Interval: ns(500), Timeout: ns(2000), Retries: 2 } });
    node.ok('image', 'load', tar);
    node.ok('service', 'create', '--name', 'inherit', 'checked:1', ...thenIdle('touch /tmp/ready'));
    expect((await healthyOf(node, 'inherit')).length).toBe(1);
    node.ok('service', 'create', '--name', 'off', '--no-healthcheck', 'checked:1', ...IDLE);
    const [off] = await runningOf(node, 'off');
    expect(off.status!.health).toBe('');

    expect(node.fails('service', 'create', '--name', 'bad', '--health-cmd', '', 'checked:1')).toBe(
      'Error: --health-cmd must not be empty (--no-healthcheck turns the image’s check off)\n',
    );
    expect(node.fails('service', 'create', '--name', 'bad', '--health-cmd', 'true', '--health-interval', '10ms', 'checked:1')).toBe(
      'Error: invalid service spec: task_template.container.healthcheck.interval_ms: must be 0 (the default) or at least 100 ms: each check runs a process in the container\n',
    );
    expect(node.fails('service', 'create', '--name', 'bad', '--health-retries', '-1', 'checked:1')).toMatch(/healthcheck\.retries: must be a non-negative integer/);
    expect((await apiOf(node).listServices()).services.map((s) => s.service!.spec!.name).sort()).toEqual(['inherit', 'off']);
  });
});
