/** Reports a broken rule: throws an error naming the field. */
type Fail = (path: string, rule: string) => never;

/** Every task copies its service's profile into etcd; Docker's default profile is about 20 KiB. */
export const MAX_SECCOMP_PROFILE_BYTES = 64 * 1024;
const SECCOMP_ACTIONS = ['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE', 'SCMP_ACT_TRAP'];
const SECCOMP_OPS = ['SCMP_CMP_EQ', 'SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_GT', 'SCMP_CMP_GE', 'SCMP_CMP_MASKED_EQ'];

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isUint = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const isStrings = (v: unknown, pattern = /./) => Array.isArray(v) && v.every((x) => typeof x === 'string' && pattern.test(x));

function onlyKeys(o: Json, allowed: string[], path: string, fail: Fail): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(`${path}.${k}`, `is not a seccomp profile field (known: ${allowed.join(', ')})`);
}

function checkCondition(c: unknown, path: string, fail: Fail): void {
  if (c === undefined) return;
  if (!isObject(c)) fail(path, 'must be an object with caps, arches or minKernel');
  const o = c as Json;
  onlyKeys(o, ['caps', 'arches', 'minKernel'], path, fail);
  if (o.caps !== undefined && !isStrings(o.caps, /^CAP_[A-Z_]+$/)) fail(`${path}.caps`, 'must be a list of capabilities such as CAP_SYS_ADMIN');
  if (o.arches !== undefined && !isStrings(o.arches)) fail(`${path}.arches`, 'must be a list of architectures such as amd64');
  if (o.minKernel !== undefined && !(typeof o.minKernel === 'string' && /^\d+\.\d+/.test(o.minKernel))) fail(`${path}.minKernel`, 'must be a kernel version such as 4.8');
}

function checkRule(r: unknown, path: string, fail: Fail): void {
  if (!isObject(r)) fail(path, 'must be an object with names and action');
  const o = r as Json;
  onlyKeys(o, ['names', 'name', 'action', 'errnoRet', 'args', 'includes', 'excludes', 'comment'], path, fail);
  const named = o.names !== undefined ? isStrings(o.names, /^[a-z0-9_]+$/) && (o.names as string[]).length > 0 : typeof o.name === 'string' && /^[a-z0-9_]+$/.test(o.name);
  if (!named) fail(`${path}.names`, 'must be a non-empty list of system call names');
  if (!SECCOMP_ACTIONS.includes(o.action as string)) fail(`${path}.action`, `must be one of ${SECCOMP_ACTIONS.join(', ')}`);
  if (o.errnoRet !== undefined && !isUint(o.errnoRet)) fail(`${path}.errnoRet`, 'must be a non-negative integer');
  if (o.args !== undefined) {
    if (!Array.isArray(o.args) || o.args.length > 6) fail(`${path}.args`, 'must be a list of at most 6 argument conditions');
    (o.args as unknown[]).forEach((a, i) => {
      const ap = `${path}.args[${i}]`;
      if (!isObject(a)) fail(ap, 'must be an object with index, value and op');
      const ao = a as Json;
      onlyKeys(ao, ['index', 'value', 'valueTwo', 'op'], ap, fail);
      if (!isUint(ao.index) || (ao.index as number) > 5) fail(`${ap}.index`, 'must be an argument index from 0 to 5');
      if (!isUint(ao.value)) fail(`${ap}.value`, 'must be a non-negative integer');
      if (ao.valueTwo !== undefined && !isUint(ao.valueTwo)) fail(`${ap}.valueTwo`, 'must be a non-negative integer');
      if (!SECCOMP_OPS.includes(ao.op as string)) fail(`${ap}.op`, `must be one of ${SECCOMP_OPS.join(', ')}`);
    });
  }
  checkCondition(o.includes, `${path}.includes`, fail);
  checkCondition(o.excludes, `${path}.excludes`, fail);
}

/**
 * "" (the default profile), "unconfined", or a seccomp profile in JSON: OCI's linux.seccomp, or
 * Docker's format (archMap, includes and excludes), which the worker resolves. Stored compact.
 */
export function validateSeccompProfile(text: string, path: string, fail: Fail): string {
  if (text === '' || text === 'unconfined') return text;
  if (Buffer.byteLength(text) > MAX_SECCOMP_PROFILE_BYTES) fail(path, `must be at most ${MAX_SECCOMP_PROFILE_BYTES / 1024} KiB`);
  let profile: unknown;
  try {
    profile = JSON.parse(text);
  } catch (err) {
    fail(path, `must be "unconfined" or a seccomp profile in JSON (${(err as Error).message})`);
  }
  if (!isObject(profile)) fail(path, 'must be "unconfined" or a seccomp profile: a JSON object with defaultAction and syscalls');
  const p = profile as Json;
  onlyKeys(p, ['defaultAction', 'defaultErrnoRet', 'architectures', 'archMap', 'flags', 'syscalls'], path, fail);
  if (!SECCOMP_ACTIONS.includes(p.defaultAction as string)) fail(`${path}.defaultAction`, `must be one of ${SECCOMP_ACTIONS.join(', ')}`);
  if (p.defaultErrnoRet !== undefined && !isUint(p.defaultErrnoRet)) fail(`${path}.defaultErrnoRet`, 'must be a non-negative integer');
  if (p.architectures !== undefined && !isStrings(p.architectures, /^SCMP_ARCH_[A-Z0-9_]+$/)) fail(`${path}.architectures`, 'must be a list such as ["SCMP_ARCH_X86_64"]');
  if (p.archMap !== undefined) {
    const ok = Array.isArray(p.archMap) && p.archMap.every((m) => isObject(m) && typeof m.architecture === 'string' && (m.subArchitectures === undefined || isStrings(m.subArchitectures)));
    if (!ok) fail(`${path}.archMap`, 'must be a list of {architecture, subArchitectures}');
  }
  if (p.flags !== undefined && !isStrings(p.flags, /^SECCOMP_FILTER_FLAG_[A-Z_]+$/)) fail(`${path}.flags`, 'must be a list such as ["SECCOMP_FILTER_FLAG_LOG"]');
  if (p.syscalls !== undefined && !Array.isArray(p.syscalls)) fail(`${path}.syscalls`, 'must be a list of rules');
  ((p.syscalls ?? []) as unknown[]).forEach((r, i) => checkRule(r, `${path}.syscalls[${i}]`, fail));
  return JSON.stringify(p);
}
