import { PassThrough } from 'node:stream';
import type { ImagesHandlers } from '../gen/shoal/v1/Images';
import type { LoadImageChunk__Output } from '../gen/shoal/v1/LoadImageChunk';
import { explainNoSpace } from '../common/disk';
import { invalidArgument, toServiceError, unavailable } from '../common/errors';
import { unary } from '../common/grpc-handlers';
import type { Executor } from './executor';
import type { GcPolicy, ImageStore } from '../images/store';
import { parseReference } from '../images/reference';
import type { Registries } from '../images/registry/registries';

/**
 * The node-local image API: images live on each node, not in cluster state. With `gc` (automatic
 * collection), a load or pull the collection would undo at once fails instead (ImageStore.admit).
 */
export function imagesHandlers(images: ImageStore, executor: Executor, registries: Registries, gc?: GcPolicy): ImagesHandlers {
  /** Images collection must leave alone: used by containers here, or by tasks assigned here. */
  const keeper = async (): Promise<(id: string) => boolean> => {
    const wanted = await images.idsOf(executor.wantedImages());
    return (id) => executor.imageInUse(id) || wanted.has(id);
  };
  const admit = async (ids: string[]): Promise<void> => {
    if (gc && (gc.highPercent !== undefined || gc.maxBytes !== undefined) && executor.imagesSettled()) await images.admit(ids, gc, await keeper());
  };
  return {
    Load: (call, cb) => {
      const tar = new PassThrough();
      call.on('data', (chunk: LoadImageChunk__Output) => {
        if (!tar.write(chunk.data)) {
          call.pause();
          tar.once('drain', () => call.resume());
        }
      });
      call.on('end', () => tar.end());
      call.on('error', (err) => tar.destroy(err));
      const loadAndAdmit = async () => {
        const loaded = await images.load(tar);
        await admit(loaded.map((i) => i.id));
        return loaded;
      };
      loadAndAdmit().then(
        (loaded) => cb(null, { images: loaded.map((i) => ({ ...i, size_bytes: i.sizeBytes, created_at: i.createdAt })) }),
        async (err) => {
          tar.resume();
          cb(toServiceError(await explainNoSpace(err, images.root)));
        },
      );
    },
    List: unary(async () => ({
      images: (await images.list()).map((i) => ({
        ...i,
        size_bytes: i.sizeBytes,
        created_at: i.createdAt,
        containers: executor.imageInUse(i.id) ? 1 : 0,
      })),
    })),
    Remove: unary((req) => images.remove(req.image, (id) => executor.imageInUse(id))),
    Prune: unary(async (req) => {
      if (!executor.imagesSettled()) throw unavailable('this node is still finding which images its containers use; try again in a moment');
      const res = await images.prune(req.all, await keeper());
      return {
        deleted: res.deleted.map((i) => ({ ...i, size_bytes: i.sizeBytes, created_at: i.createdAt, containers: 0 })),
        reclaimed_bytes: res.reclaimedBytes,
      };
    }),
    CheckLogin: unary(async (req) => {
      const auth = req.registry_auth;
      if (!auth?.registry || !auth.username) throw invalidArgument('a registry and a username are required');
      await registries.clientFor({ auth, insecureRegistry: req.insecure_registry ? auth.registry : undefined }).checkLogin(auth.registry);
      return {};
    }),
    Pull: unary(async (req) => {
      const ref = parseReference(req.image);
      // The user's credentials serve this pull only; the daemon keeps none of them.
      const auth = req.registry_auth?.username ? { ...req.registry_auth, registry: ref.registry } : undefined;
      const client = registries.clientFor({ auth, insecureRegistry: req.insecure_registry ? ref.registry : undefined });
      const i = await images.pull(req.image, client).catch(async (err) => Promise.reject(await explainNoSpace(err, images.root)));
      await admit([i.id]);
      const digest = i.repoDigest.slice(i.repoDigest.lastIndexOf('@') + 1);
      return { image: { ...i, size_bytes: i.sizeBytes, created_at: i.createdAt, containers: executor.imageInUse(i.id) ? 1 : 0 }, digest };
    }),
  };
}
