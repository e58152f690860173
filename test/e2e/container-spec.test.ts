import { beforeAll, describe, expect, it } from 'vitest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { configuredImage } from './images';
import { nextTaskLogging, taskLines, tasksOf, waitFor } from './observe';
import { useE2eNode } from './use-node';
import { IDLE_SCRIPT } from '../helpers/workloads';

const node = useE2eNode();

/** Prints its arguments, three variables and where and as whom it runs, then idles. */
const REPORT = `echo "argv: $0 $*"; echo "GREETING=$GREETING FROM_IMAGE=$FROM_IMAGE ONLY_SERVICE=$ONLY_SERVICE"; echo "pwd=$(pwd) user=$(id -u):$(id -g) hostname=$(hostname)"; ${IDLE_SCRIPT}`;

beforeAll(() => {
  node.ok(
    'image',
    'load',
    configuredImage(node, 'shoal-e2e:config', {
      Entrypoint: ['sh', '-c', REPORT],
      Cmd: ['image-cmd', 'a', 'b'],
      Env: ['PATH=/bin', 'GREETING=from-image', 'FROM_IMAGE=yes'],
      WorkingDir: '/tmp',
      User: 'nobody',
    }),
  );
});

/** Creates the service and returns its task and the three lines REPORT printed. */
async function report(name: string, ...args: string[]): Promise<{ task: Task__Output; lines: string[] }> {
  node.ok('service', 'create', '--name', name, ...args);
  const task = await nextTaskLogging(node, name, /^pwd=/);
  return { task, lines: await taskLines(node, name, task.id) };
}

describe('the container a task runs', () => {
  it('runs the image’s Entrypoint with its Cmd, Env, WorkingDir and User', async () => {
    const { task, lines } = await report('image', 'shoal-e2e:config');
    expect(lines).toEqual(['argv: image-cmd a b', 'GREETING=from-image FROM_IMAGE=yes ONLY_SERVICE=', `pwd=/tmp user=65534:65534 hostname=${task.id.slice(0, 12)}`]);
  });

  it('service arguments replace the image’s Cmd and keep its Entrypoint; -e overrides and adds by key', async () => {
    const { lines } = await report('args', '-e', 'GREETING=from-service', '-e', 'ONLY_SERVICE=1', 'shoal-e2e:config', 'svc-arg0', 'x', 'y z');
    expect(lines.slice(0, 2)).toEqual(['argv: svc-arg0 x y z', 'GREETING=from-service FROM_IMAGE=yes ONLY_SERVICE=1']);
  });

  it('--entrypoint replaces the image’s Entrypoint, and its Cmd is not appended', async () => {
    const { lines } = await report('entry', '--entrypoint', 'sh -c', 'shoal-e2e:config', REPORT.replace('argv:', 'replaced:'), 'zero', 'one');
    expect(lines[0]).toBe('replaced: zero one');

    // Only an entrypoint: had the image's Cmd been appended, env would try to run `image-cmd`.
    node.ok('service', 'create', '-d', '--name', 'envonly', '--restart-condition', 'none', '--entrypoint', 'env', 'shoal-e2e:config');
    const done = await waitFor('envonly to finish', async () => (await tasksOf(node, 'envonly')).find((t) => t.status!.state === 'COMPLETE'));
    const env = await taskLines(node, 'envonly', done.id);
    expect(env).toEqual(expect.arrayContaining(['GREETING=from-image', 'FROM_IMAGE=yes', 'PATH=/bin']));
    expect(env.join('\n')).not.toMatch(/image-cmd/);
  });

  it('--hostname, --workdir and --user apply inside the container, over the image’s', async () => {
    const { lines } = await report('who', '--hostname', 'web-1', '--workdir', '/www', '--user', '0:0', 'shoal-e2e:config');
    expect(lines[2]).toBe('pwd=/www user=0:0 hostname=web-1');

    const named = await report('named', '--user', 'nobody', '--workdir', '/etc', 'shoal-test:latest', 'sh', '-c', REPORT);
    expect(named.lines[2]).toBe(`pwd=/etc user=65534:65534 hostname=${named.task.id.slice(0, 12)}`);

    const numeric = await report('numeric', '-u', '65534:0', '-w', '/', '--hostname', 'h2', 'shoal-test:latest', 'sh', '-c', REPORT);
    expect(numeric.lines[2]).toBe('pwd=/ user=65534:0 hostname=h2');
  });
});
