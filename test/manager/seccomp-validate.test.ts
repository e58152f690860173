import { describe, expect, it } from 'vitest';
import { validateServiceSpec } from '../../src/manager/validate';

const withProfile = (seccomp_profile: string) => ({ name: 'web', task_template: { container: { image: 'busybox', seccomp_profile } } });
const stored = (p: string) => validateServiceSpec(withProfile(p)).task_template!.container!.seccomp_profile;
const rejects = (p: unknown, message: string) =>
  expect(() => validateServiceSpec(withProfile(typeof p === 'string' ? p : JSON.stringify(p)))).toThrow(`invalid service spec: task_template.container.seccomp_profile${message}`);

describe('seccomp_profile validation', () => {
  it('takes "" (the default), "unconfined" and a profile, stored compact', () => {
    expect(stored('')).toBe('');
    expect(stored('unconfined')).toBe('unconfined');
    const profile = { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read', 'write'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }] }] };
    expect(stored(JSON.stringify(profile, null, 2))).toBe(JSON.stringify(profile));
  });

  it('takes Docker’s format', () => {
    const docker = {
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] }],
      syscalls: [{ names: ['chroot'], action: 'SCMP_ACT_ALLOW', comment: '', includes: { caps: ['CAP_SYS_CHROOT'], minKernel: '4.8' }, excludes: { arches: ['s390x'] } }],
    };
    expect(JSON.parse(stored(JSON.stringify(docker)))).toEqual(docker);
  });

  it('refuses anything else, naming the field and the rule', () => {
    rejects('strict', ': must be "unconfined" or a seccomp profile in JSON');
    rejects([1], ': must be "unconfined" or a seccomp profile: a JSON object with defaultAction and syscalls');
    rejects({ syscalls: [] }, '.defaultAction: must be one of SCMP_ACT_ALLOW');
    rejects({ defaultAction: 'SCMP_ACT_ERRNO', listenerPath: '/run/x' }, '.listenerPath: is not a seccomp profile field');
    rejects({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: {} }, '.syscalls: must be a list of rules');
    rejects({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ action: 'SCMP_ACT_ALLOW' }] }, '.syscalls[0].names: must be a non-empty list of system call names');
    rejects({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'ALLOW' }] }, '.syscalls[0].action: must be one of');
    rejects({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 6, value: 0, op: 'SCMP_CMP_EQ' }] }] }, '.syscalls[0].args[0].index: must be an argument index from 0 to 5');
    rejects({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: -1, op: 'SCMP_CMP_EQ' }] }] }, '.syscalls[0].args[0].value: must be a non-negative integer');
    rejects({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['sys_admin'] } }] }, '.syscalls[0].includes.caps: must be a list of capabilities');
    rejects({ defaultAction: 'SCMP_ACT_ERRNO', architectures: ['x86_64'] }, '.architectures: must be a list such as ["SCMP_ARCH_X86_64"]');
    rejects(JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['x'.repeat(70 * 1024)], action: 'SCMP_ACT_ERRNO' }] }), ': must be at most 64 KiB');
  });
});
