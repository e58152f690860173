import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { buildDerivedImage } from '../helpers/derived-image';
import { buildTestImage, type TestNode } from '../helpers/test-node';

const testImages = new WeakMap<TestNode, string>();

/** The shoal-test:latest tar, built once per node (the build takes a while on a busy host). */
export function testImage(node: TestNode): string {
  let tar = testImages.get(node);
  if (!tar) testImages.set(node, (tar = buildTestImage(node.dir)));
  return tar;
}

/**
 * An image tar for `shoal image load`: the busybox test image with `config` set in its image
 * config (Entrypoint, Cmd, Env, StopSignal, …) and, if `layerBytes`, one more layer of that many
 * random bytes of its own, tagged `tag`.
 */
export function configuredImage(node: TestNode, tag: string, config: Record<string, unknown>, layerBytes = 0): string {
  const layers = layerBytes ? 1 : 0;
  const { layout } = buildDerivedImage(node.dir, { layers, layerBytes, seed: tag, refName: tag, config, base: testImage(node) });
  const tar = path.join(node.dir, `${tag.replace(/[^a-z0-9]/gi, '_')}.tar`);
  execFileSync('tar', ['-C', layout, '-cf', tar, 'oci-layout', 'index.json', 'blobs']);
  return tar;
}
