import { release } from 'node:os';
import { invalidArgument } from '../../common/errors';

/** The OCI runtime spec's `linux.seccomp`, which runc turns into the container's filter. */
export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  syscalls?: SeccompRule[];
}

export interface SeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
}

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

const EPERM = 1;
const ENOSYS = 38;
const AF_VSOCK = 40;
/** CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET */
const CLONE_NAMESPACES = 0x7e020000;
/** PER_LINUX, PER_LINUX32, UNAME26, UNAME26 | PER_LINUX32, and 0xffffffff, which only asks. */
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/** Architectures by Node's process.arch: the native one and those its kernel also runs (32-bit, x32). */
const ARCHES: Record<string, string[]> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  arm: ['SCMP_ARCH_ARM'],
  ia32: ['SCMP_ARCH_X86'],
};

/**
 * System calls every container may make, by what they are for. Names an architecture or an older
 * libseccomp does not know are skipped by runc. Left out, besides those gated by a capability
 * below: the kernel keyring (add_key, keyctl, request_key; not namespaced), userfaultfd, io_uring
 * (a large attack surface), modify_ldt, and obsolete or unimplemented calls (uselib, ustat, sysfs,
 * _sysctl, vm86, nfsservctl, bdflush, create_module, query_module, get_kernel_syms, …).
 */
const ALLOWED: readonly string[] = [
  // files and directories
  'access', 'chdir', 'chmod', 'chown', 'chown32', 'close', 'close_range', 'copy_file_range', 'creat',
  'dup', 'dup2', 'dup3', 'faccessat', 'faccessat2', 'fadvise64', 'fadvise64_64', 'arm_fadvise64_64',
  'fallocate', 'fchdir', 'fchmod', 'fchmodat', 'fchmodat2', 'fchown', 'fchown32', 'fchownat', 'fcntl',
  'fcntl64', 'fdatasync', 'flock', 'fstat', 'fstat64', 'fstatat64', 'fstatfs', 'fstatfs64', 'fsync',
  'ftruncate', 'ftruncate64', 'futimesat', 'getcwd', 'getdents', 'getdents64', 'lchown', 'lchown32',
  'link', 'linkat', '_llseek', 'lseek', 'lstat', 'lstat64', 'mkdir', 'mkdirat', 'mknod', 'mknodat',
  'newfstatat', 'open', 'openat', 'openat2', 'pread64', 'preadv', 'preadv2', 'pwrite64', 'pwritev',
  'pwritev2', 'read', 'readahead', 'readdir', 'readlink', 'readlinkat', 'readv', 'rename', 'renameat',
  'renameat2', 'rmdir', 'sendfile', 'sendfile64', 'splice', 'stat', 'stat64', 'statfs', 'statfs64',
  'statx', 'symlink', 'symlinkat', 'sync', 'sync_file_range', 'sync_file_range2', 'arm_sync_file_range',
  'syncfs', 'tee', 'truncate', 'truncate64', 'umask', 'unlink', 'unlinkat', 'utime', 'utimensat',
  'utimensat_time64', 'utimes', 'vmsplice', 'write', 'writev', 'cachestat',
  // extended attributes
  'fgetxattr', 'flistxattr', 'fremovexattr', 'fsetxattr', 'getxattr', 'lgetxattr', 'listxattr',
  'llistxattr', 'lremovexattr', 'lsetxattr', 'removexattr', 'setxattr', 'getxattrat', 'listxattrat',
  'removexattrat', 'setxattrat',
  // waiting on descriptors, file events
  'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_pwait', 'epoll_pwait2', 'epoll_wait', 'eventfd',
  'eventfd2', 'fanotify_mark', 'inotify_add_watch', 'inotify_init', 'inotify_init1', 'inotify_rm_watch',
  'poll', 'ppoll', 'ppoll_time64', 'pselect6', 'pselect6_time64', 'select', '_newselect', 'signalfd',
  'signalfd4', 'timerfd_create', 'timerfd_gettime', 'timerfd_gettime64', 'timerfd_settime',
  'timerfd_settime64',
  // asynchronous I/O (not io_uring)
  'io_cancel', 'io_destroy', 'io_getevents', 'io_pgetevents', 'io_pgetevents_time64', 'io_setup', 'io_submit',
  // memory
  'brk', 'cacheflush', 'madvise', 'map_shadow_stack', 'membarrier', 'memfd_create', 'memfd_secret',
  'mincore', 'mlock', 'mlock2', 'mlockall', 'mmap', 'mmap2', 'mprotect', 'mremap', 'mseal', 'msync',
  'munlock', 'munlockall', 'munmap', 'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'remap_file_pages',
  // processes and threads
  'arch_prctl', 'breakpoint', 'capget', 'capset', 'execve', 'execveat', 'exit', 'exit_group', 'fork',
  'get_robust_list', 'get_thread_area', 'getcpu', 'getpgid', 'getpgrp', 'getpid', 'getppid',
  'getpriority', 'getrlimit', 'getrusage', 'getsid', 'gettid', 'ioprio_get', 'ioprio_set',
  'landlock_add_rule', 'landlock_create_ruleset', 'landlock_restrict_self', 'lsm_get_self_attr',
  'lsm_list_modules', 'lsm_set_self_attr', 'nice', 'pidfd_open', 'pidfd_send_signal', 'prctl',
  'prlimit64', 'process_mrelease', 'ptrace', 'restart_syscall', 'rseq', 'sched_get_priority_max',
  'sched_get_priority_min', 'sched_getaffinity', 'sched_getattr', 'sched_getparam',
  'sched_getscheduler', 'sched_rr_get_interval', 'sched_rr_get_interval_time64', 'sched_setaffinity',
  'sched_setattr', 'sched_setparam', 'sched_setscheduler', 'sched_yield', 'seccomp', 'set_robust_list',
  'set_thread_area', 'set_tid_address', 'set_tls', 'setpgid', 'setpriority', 'setrlimit', 'setsid',
  'ugetrlimit', 'uretprobe', 'vfork', 'wait4', 'waitid', 'waitpid',
  // users and groups
  'getegid', 'getegid32', 'geteuid', 'geteuid32', 'getgid', 'getgid32', 'getgroups', 'getgroups32',
  'getresgid', 'getresgid32', 'getresuid', 'getresuid32', 'getuid', 'getuid32', 'setfsgid',
  'setfsgid32', 'setfsuid', 'setfsuid32', 'setgid', 'setgid32', 'setgroups', 'setgroups32', 'setregid',
  'setregid32', 'setresgid', 'setresgid32', 'setresuid', 'setresuid32', 'setreuid', 'setreuid32',
  'setuid', 'setuid32',
  // signals
  'alarm', 'kill', 'pause', 'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo',
  'rt_sigreturn', 'rt_sigsuspend', 'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_tgsigqueueinfo',
  'sigaction', 'sigaltstack', 'signal', 'sigpending', 'sigprocmask', 'sigreturn', 'sigsuspend',
  'sgetmask', 'ssetmask', 'tgkill', 'tkill',
  // clocks and timers (reading; setting needs CAP_SYS_TIME)
  'adjtimex', 'clock_getres', 'clock_getres_time64', 'clock_gettime', 'clock_gettime64',
  'clock_nanosleep', 'clock_nanosleep_time64', 'getitimer', 'gettimeofday', 'nanosleep', 'setitimer',
  'time', 'timer_create', 'timer_delete', 'timer_getoverrun', 'timer_gettime', 'timer_gettime64',
  'timer_settime', 'timer_settime64', 'times',
  // futexes
  'futex', 'futex_requeue', 'futex_time64', 'futex_wait', 'futex_waitv', 'futex_wake',
  // sockets (socket itself below)
  'accept', 'accept4', 'bind', 'connect', 'getpeername', 'getsockname', 'getsockopt', 'listen', 'recv',
  'recvfrom', 'recvmmsg', 'recvmmsg_time64', 'recvmsg', 'send', 'sendmmsg', 'sendmsg', 'sendto',
  'setsockopt', 'shutdown', 'socketcall', 'socketpair',
  // pipes, System V and POSIX IPC
  'ipc', 'mq_getsetattr', 'mq_notify', 'mq_open', 'mq_timedreceive', 'mq_timedreceive_time64',
  'mq_timedsend', 'mq_timedsend_time64', 'mq_unlink', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'pipe',
  'pipe2', 'semctl', 'semget', 'semop', 'semtimedop', 'semtimedop_time64', 'shmat', 'shmctl', 'shmdt',
  'shmget',
  // the system, read-only
  'getrandom', 'ioctl', 'listmount', 'statmount', 'sysinfo', 'uname',
];

/**
 * System calls allowed only to a container that holds the capability, as Docker's profile
 * gates them: granting a capability is not enough, the filter has to let the call through too.
 */
const BY_CAPABILITY: Readonly<Record<string, readonly string[]>> = {
  CAP_SYS_ADMIN: [
    'bpf', 'fanotify_init', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'lookup_dcookie', 'mount',
    'mount_setattr', 'move_mount', 'name_to_handle_at', 'open_tree', 'open_tree_attr', 'perf_event_open',
    'pivot_root', 'quotactl', 'quotactl_fd', 'setdomainname', 'sethostname', 'setns', 'swapoff', 'swapon',
    'syslog', 'umount', 'umount2', 'unshare',
  ],
  CAP_SYS_BOOT: ['kexec_file_load', 'kexec_load', 'reboot'],
  CAP_SYS_CHROOT: ['chroot'],
  CAP_SYS_MODULE: ['delete_module', 'finit_module', 'init_module'],
  CAP_SYS_PACCT: ['acct'],
  CAP_SYS_PTRACE: ['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev'],
  CAP_SYS_RAWIO: ['ioperm', 'iopl'],
  CAP_SYS_TIME: ['clock_adjtime', 'clock_adjtime64', 'clock_settime', 'clock_settime64', 'settimeofday', 'stime'],
  CAP_SYS_TTY_CONFIG: ['vhangup'],
  CAP_SYS_NICE: ['get_mempolicy', 'mbind', 'migrate_pages', 'move_pages', 'set_mempolicy', 'set_mempolicy_home_node'],
  CAP_SYSLOG: ['syslog'],
  CAP_BPF: ['bpf'],
  CAP_PERFMON: ['perf_event_open'],
  CAP_DAC_READ_SEARCH: ['open_by_handle_at'],
};

/**
 * shoal's default profile for a container holding `caps`, after the policy Docker's default
 * profile documents: refuse (EPERM) whatever is not allowed; allow the list above and the calls
 * of the capabilities held; clone only without namespace flags (no unshare or setns either, so no
 * new user namespace to gain capabilities in), clone3 answers ENOSYS (its flags are out of a
 * filter's reach; libc then falls back to clone); personality only for the harmless personas;
 * sockets of any family but vsock. With CAP_SYS_ADMIN, clone and clone3 are free.
 */
export function defaultSeccompProfile(caps: readonly string[], arch: string = process.arch): SeccompProfile {
  const held = new Set(caps);
  const gated = [...new Set(Object.entries(BY_CAPABILITY).flatMap(([cap, names]) => (held.has(cap) ? names : [])))];
  const admin = held.has('CAP_SYS_ADMIN');
  const syscalls: SeccompRule[] = [
    { names: [...ALLOWED, ...gated].sort(), action: 'SCMP_ACT_ALLOW' },
    { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: PERSONALITIES.map((value) => ({ index: 0, value, op: 'SCMP_CMP_EQ' })) },
    { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_NE' }] },
    admin
      ? { names: ['clone', 'clone3'], action: 'SCMP_ACT_ALLOW' }
      : { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NAMESPACES, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
  ];
  if (!admin) syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  const architectures = ARCHES[arch];
  return { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: EPERM, ...(architectures ? { architectures } : {}), syscalls };
}

/** A profile as the user gave it: OCI's linux.seccomp, or Docker's format (archMap, name, includes and excludes). */
interface GivenProfile extends Partial<Omit<SeccompProfile, 'syscalls'>> {
  archMap?: { architecture: string; subArchitectures?: string[] }[];
  syscalls?: (Partial<SeccompRule> & { name?: string; includes?: Condition; excludes?: Condition })[];
}

interface Condition {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

/** Docker's arch names in includes/excludes, by process.arch. */
const DOCKER_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' };

function kernelAtLeast(min: string, kernel: string): boolean {
  const [a, b] = [min, kernel].map((v) => v.split(/[.-]/).slice(0, 2).map(Number));
  return b[0] > a[0] || (b[0] === a[0] && b[1] >= a[1]);
}

/**
 * The filter for a task's seccomp_profile: "" is the default profile for `caps`, "unconfined" is
 * none, anything else a profile in JSON (its shape checked by the manager). Docker's format is
 * resolved here, where the architecture, the kernel and the capabilities are known.
 */
export function seccompFor(profile: string, caps: readonly string[], arch: string = process.arch, kernel: string = release()): SeccompProfile | undefined {
  if (!profile) return defaultSeccompProfile(caps, arch);
  if (profile === 'unconfined') return undefined;
  let given: GivenProfile;
  try {
    given = JSON.parse(profile) as GivenProfile;
  } catch (err) {
    throw invalidArgument(`the seccomp profile is not valid JSON: ${(err as Error).message}`);
  }
  const held = new Set(caps);
  const applies = (c: Condition | undefined, all: boolean): boolean => {
    if (!c) return all;
    const tests = [
      c.caps?.length ? (all ? c.caps.every((x) => held.has(x)) : c.caps.some((x) => held.has(x))) : all,
      c.arches?.length ? c.arches.includes(DOCKER_ARCH[arch] ?? arch) : all,
      c.minKernel ? kernelAtLeast(c.minKernel, kernel) : all,
    ];
    return all ? tests.every(Boolean) : tests.some(Boolean);
  };
  const native = ARCHES[arch]?.[0];
  const mapped = given.archMap?.filter((m) => m.architecture === native).flatMap((m) => [m.architecture, ...(m.subArchitectures ?? [])]);
  const architectures = given.architectures ?? mapped;
  const syscalls = (given.syscalls ?? [])
    .filter((s) => applies(s.includes, true) && !applies(s.excludes, false))
    .map(({ names, name, action, errnoRet, args }) => ({
      names: names ?? (name ? [name] : []),
      action: action!,
      ...(errnoRet !== undefined ? { errnoRet } : {}),
      ...(args?.length ? { args } : {}),
    }));
  return {
    defaultAction: given.defaultAction!,
    ...(given.defaultErrnoRet !== undefined ? { defaultErrnoRet: given.defaultErrnoRet } : {}),
    ...(architectures?.length ? { architectures } : {}),
    ...(given.flags?.length ? { flags: given.flags } : {}),
    syscalls,
  };
}
