import { describe, expect, it } from 'vitest';
import { DEFAULT_CAPS } from '../../src/worker/runtime/spec';
import { defaultSeccompProfile, seccompFor, type SeccompProfile } from '../../src/worker/runtime/seccomp';

const allowed = (p: SeccompProfile) => new Set(p.syscalls!.filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names));
const rule = (p: SeccompProfile, name: string) => p.syscalls!.filter((r) => r.names.includes(name));

describe('the default seccomp profile', () => {
  const p = defaultSeccompProfile(DEFAULT_CAPS, 'x64');

  it('refuses by default, with EPERM, on the native architecture and its 32-bit ones', () => {
    expect(p.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(p.defaultErrnoRet).toBe(1);
    expect(p.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  });

  it('allows what ordinary programs use and refuses what Docker’s default refuses without capabilities', () => {
    const ok = allowed(p);
    for (const name of ['read', 'write', 'openat', 'execve', 'mmap', 'futex', 'epoll_wait', 'accept4', 'wait4', 'rt_sigaction', 'clock_gettime', 'chroot', 'ptrace']) {
      expect(ok.has(name), name).toBe(true);
    }
    const refused = ['unshare', 'setns', 'mount', 'umount2', 'pivot_root', 'keyctl', 'add_key', 'request_key', 'bpf', 'perf_event_open', 'kexec_load', 'init_module',
      'reboot', 'swapon', 'acct', 'settimeofday', 'clock_settime', 'userfaultfd', 'io_uring_setup', 'open_by_handle_at', 'name_to_handle_at', 'process_vm_readv',
      'iopl', 'syslog', 'sethostname', 'vhangup', 'mbind', 'fsopen', 'move_mount'];
    for (const name of refused) expect(rule(p, name), name).toEqual([]);
  });

  it('lets clone through only without namespace flags, and sends clone3 back to clone', () => {
    expect(rule(p, 'clone')).toEqual([{ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] }]);
    expect(rule(p, 'clone3')).toEqual([{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
  });

  it('allows only the harmless personalities and no vsock sockets', () => {
    expect(rule(p, 'personality')[0].args!.map((a) => a.value)).toEqual([0, 8, 0x20000, 0x20008, 0xffffffff]);
    expect(rule(p, 'socket')[0].args).toEqual([{ index: 0, value: 40, op: 'SCMP_CMP_NE' }]);
  });

  it('lets a capability’s system calls through only when the container holds it', () => {
    expect(allowed(defaultSeccompProfile([], 'x64')).has('chroot')).toBe(false);
    const admin = defaultSeccompProfile([...DEFAULT_CAPS, 'CAP_SYS_ADMIN'], 'x64');
    expect(allowed(admin).has('mount')).toBe(true);
    expect(allowed(admin).has('unshare')).toBe(true);
    expect(rule(admin, 'clone')).toEqual([{ names: ['clone', 'clone3'], action: 'SCMP_ACT_ALLOW' }]);
  });
});

describe('seccompFor', () => {
  it('is the default profile for "", none for "unconfined"', () => {
    expect(seccompFor('', DEFAULT_CAPS, 'x64')).toEqual(defaultSeccompProfile(DEFAULT_CAPS, 'x64'));
    expect(seccompFor('unconfined', DEFAULT_CAPS, 'x64')).toBeUndefined();
  });

  it('resolves Docker’s format for this architecture, kernel and capability set', () => {
    const docker = {
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      archMap: [
        { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] },
        { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
      ],
      syscalls: [
        { names: ['read'], action: 'SCMP_ACT_ALLOW', comment: 'always' },
        { name: 'write', action: 'SCMP_ACT_ALLOW' },
        { names: ['chroot'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_CHROOT'] } },
        { names: ['mount'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
        { names: ['ptrace'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '4.8' } },
        { names: ['kcmp'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '7.0' } },
        { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['amd64'] } },
        { names: ['set_tls'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['arm', 'arm64'] } },
        { names: ['clone'], action: 'SCMP_ACT_ALLOW', excludes: { caps: ['CAP_SYS_CHROOT'] } },
      ],
    };
    expect(seccompFor(JSON.stringify(docker), DEFAULT_CAPS, 'x64', '6.1.0-13-amd64')).toEqual({
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
      syscalls: ['read', 'write', 'chroot', 'ptrace', 'arch_prctl'].map((n) => ({ names: [n], action: 'SCMP_ACT_ALLOW' })),
    });
  });
});
