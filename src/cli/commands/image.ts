import * as fs from 'node:fs';
import { Command } from 'commander';
import type { LoadImageResponse__Output } from '../../gen/shoal/v1/LoadImageResponse';
import { formatBytes } from '../../common/units';
import type { Client } from '../client';
import { credentialsForImage } from '../credentials';
import { ago, listingOptions, printIdsOrJson, printTable } from '../format';

const CHUNK = 1 << 20;

export function imageCommand(connect: () => Client): Command {
  const image = new Command('image').description('manage images on this node');
  image
    .command('load')
    .description('load an OCI image layout tar or a `docker save` tar')
    .argument('[file]', 'the tar file (default: standard input)')
    .option('-i, --input <file>', 'the tar file, as docker load -i')
    .action(async (file: string | undefined, opts) => {
      const client = connect();
      const path = file ?? opts.input;
      const input = path ? fs.createReadStream(path, { highWaterMark: CHUNK }) : process.stdin;
      const res = await new Promise<LoadImageResponse__Output>((resolve, reject) => {
        const call = client.images.Load((err, r) => (err ? reject(client.explain(err)) : resolve(r!)));
        input.on('data', (data: Buffer) => {
          if (!call.write({ data })) {
            input.pause();
            call.once('drain', () => input.resume());
          }
        });
        input.on('end', () => call.end());
        input.on('error', (err: Error) => {
          call.cancel();
          reject(new Error(`cannot read ${path ?? 'standard input'}: ${err.message}`));
        });
      });
      for (const i of res.images) process.stdout.write(`Loaded image: ${i.tags.join(', ') || i.id}\n`);
    });

  image
    .command('pull')
    .description('pull an image from its registry onto this node')
    .argument('<image>', 'a reference that names its registry: registry.local:5000/team/web:1.4 or …@sha256:…')
    .option('--insecure-registry', 'speak plain HTTP to this image’s registry')
    .action(async (ref: string, opts) => {
      // The user's `shoal login` credentials for this registry, if any, serve this pull only.
      const res = await connect().pullImage({ image: ref, insecure_registry: Boolean(opts.insecureRegistry), registry_auth: credentialsForImage(ref) ?? null });
      process.stdout.write(`Digest: ${res.digest}\nPulled: ${ref} (${res.image!.id.slice(7, 19)})\n`);
    });

  image
    .command('prune')
    .description('remove unused images: dangling ones (untagged), or with -a every image no container uses')
    .option('-a, --all', 'remove every image no container uses, not only dangling ones')
    .option('-f, --force', 'do not ask (accepted for docker compatibility; shoal never asks)')
    .action(async (opts) => {
      const res = await connect().pruneImages(Boolean(opts.all));
      for (const i of res.deleted) {
        for (const t of i.tags) process.stdout.write(`Untagged: ${t}\n`);
        process.stdout.write(`Deleted: ${i.id}\n`);
      }
      process.stdout.write(`Total reclaimed space: ${formatBytes(Number(res.reclaimed_bytes))}\n`);
    });

  listingOptions(image.command('ls').description('list images'), 'image')
    .action(async (opts) => {
      const { images } = await connect().listImages();
      if (printIdsOrJson(opts, images, (i) => i.id)) return;
      const rows: string[][] = [];
      for (const i of images) {
        const id = i.id.replace(/^sha256:/, '').slice(0, 12);
        const tags = i.tags.length ? i.tags : ['<none>:<none>'];
        for (const t of tags) {
          const at = t.lastIndexOf(':');
          rows.push([t.slice(0, at), t.slice(at + 1), id, ago(i.created_at), formatBytes(i.size_bytes)]);
        }
      }
      printTable(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows);
    });

  image
    .command('rm')
    .alias('remove')
    .description('remove images')
    .argument('<image...>', 'image references or IDs')
    .action(async (refs: string[]) => {
      const client = connect();
      for (const ref of refs) {
        const res = await client.removeImage(ref);
        for (const u of res.untagged) process.stdout.write(`Untagged: ${u}\n`);
        for (const d of res.deleted) process.stdout.write(`Deleted: ${d}\n`);
      }
    });
  return image;
}
