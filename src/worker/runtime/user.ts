import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { invalidArgument } from '../../common/errors';

export interface ExecUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const NUM_RE = /^[0-9]+$/;
const MAX_ID = 2 ** 31 - 1;

/** Reads a file of the container's rootfs, refusing symlinks (an image must not make us read the host's files). */
async function readRootfsFile(rootfs: string, rel: string): Promise<string> {
  const p = path.join(rootfs, rel);
  try {
    const st = await fs.lstat(p);
    if (!st.isFile()) return '';
    return await fs.readFile(p, 'utf8');
  } catch {
    return '';
  }
}

function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 4 || !NUM_RE.test(f[2]) || !NUM_RE.test(f[3])) continue;
    out.push({ name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] || '/' });
  }
  return out;
}

function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 3 || !NUM_RE.test(f[2])) continue;
    out.push({ name: f[0], gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) });
  }
  return out;
}

function toId(s: string, what: string, spec: string): number {
  const n = Number(s);
  if (n > MAX_ID) throw invalidArgument(`invalid user "${spec}": ${what} ${s} is out of range`);
  return n;
}

/**
 * Resolves a Docker-style user ("", "uid", "uid:gid", "name", "name:group", or mixes) against the
 * container's /etc/passwd and /etc/group, as runc's libcontainer/user does: a numeric uid need not
 * exist (then gid 0, home "/"), a name must; supplementary groups are those listing the user.
 */
export async function resolveUser(rootfs: string, spec: string): Promise<ExecUser> {
  const [userPart, groupPart, ...rest] = spec.split(':');
  if (rest.length) throw invalidArgument(`invalid user "${spec}": use "user" or "user:group"`);
  const u = userPart ?? '';
  // Read even for root: home and supplementary groups come from passwd.
  const passwd = parsePasswd(await readRootfsFile(rootfs, 'etc/passwd'));

  let entry: PasswdEntry | undefined;
  let uid: number;
  if (u === '') {
    uid = 0;
    entry = passwd.find((p) => p.uid === 0);
  } else if (NUM_RE.test(u)) {
    uid = toId(u, 'uid', spec);
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === u);
    if (!entry) throw invalidArgument(`unable to find user ${u}: no matching entries in passwd file`);
    uid = entry.uid;
  }
  let gid = entry?.gid ?? 0;

  let groups: GroupEntry[] | null = null;
  const loadGroups = async () => (groups ??= parseGroup(await readRootfsFile(rootfs, 'etc/group')));
  if (groupPart !== undefined && groupPart !== '') {
    if (NUM_RE.test(groupPart)) gid = toId(groupPart, 'gid', spec);
    else {
      const g = (await loadGroups()).find((x) => x.name === groupPart);
      if (!g) throw invalidArgument(`unable to find group ${groupPart}: no matching entries in group file`);
      gid = g.gid;
    }
  }

  const additionalGids: number[] = [];
  if (entry) {
    for (const g of await loadGroups()) {
      if (g.members.includes(entry.name) && g.gid !== gid && !additionalGids.includes(g.gid)) additionalGids.push(g.gid);
    }
  }
  return { uid, gid, additionalGids, home: entry?.home || '/' };
}
