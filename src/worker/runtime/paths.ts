import * as path from 'node:path';
import { invalidArgument } from '../../common/errors';

/** Container ids name directories, cgroups and files, so they must be plain: no dots, no slashes. */
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function checkId(id: string): void {
  if (!ID_RE.test(id)) throw invalidArgument(`invalid container id "${id}": use 1-64 letters, digits, '_' or '-'`);
}

export function isId(name: string): boolean {
  return ID_RE.test(name);
}

/**
 * Where things live under the runtime root:
 *   <root>/bundles/<id>/     OCI bundle: config.json, hosts, hostname, resolv.conf, pidfile, conmon.pid,
 *                            rootfs/ (where runc mounts the overlay, in the container), upper/, work/,
 *                            l/<n> -> layer dirs (short lowerdir)
 *   <root>/exits/<id>        exit code, written by conmon
 *   <root>/sock/<id>         conmon's attach socket symlink
 */
export class Layout {
  readonly bundles: string;
  readonly exits: string;
  readonly sockets: string;

  constructor(
    readonly root: string,
    readonly runcRoot: string,
  ) {
    this.bundles = path.join(root, 'bundles');
    this.exits = path.join(root, 'exits');
    this.sockets = path.join(root, 'sock');
  }

  bundle(id: string): string {
    return path.join(this.bundles, id);
  }
  rootfs(id: string): string {
    return path.join(this.bundles, id, 'rootfs');
  }
  exitFile(id: string): string {
    return path.join(this.exits, id);
  }
  conmonPidFile(id: string): string {
    return path.join(this.bundles, id, 'conmon.pid');
  }
  runcState(id: string): string {
    return path.join(this.runcRoot, id);
  }
}
