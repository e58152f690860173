import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import type { Runtime } from '../../src/worker/runtime/runtime';
import { setUpRuntime, tearDownRuntime, type RuntimeSetup } from '../helpers/runtime';

export { alive, closeRuntimes, config, leftovers, makeBusyboxLayer, newId, testMarker, type RuntimeSetup } from '../helpers/runtime';

/**
 * A Runtime for the tests of a file or describe block, with cgroups below `marker`: set up before
 * them (handed to `ready`), emptied after each (so every test starts from an empty runtime, even
 * when the previous one failed half-way), and at the end closed (with `close`, if given: it closes
 * the runtimes the file made besides this one too) and checked to have left no mount, cgroup, runc
 * container or process behind.
 */
export function useRuntime(marker: string, ready: (setup: RuntimeSetup) => void, close?: (rt: Runtime) => void | Promise<void>): void {
  let setup: RuntimeSetup | undefined;
  beforeAll(() => {
    setup = setUpRuntime(marker);
    ready(setup);
  });
  afterEach(async () => {
    await setup!.rt.removeAll();
  });
  afterAll(async () => {
    expect(await tearDownRuntime(marker, setup, close)).toEqual([]);
  });
}
