"""Running untrusted completion code (docs/rewards.md, "The sandbox"; docs/algorithms.md §10).

``run_python(code, stdin=..., config=...)`` runs a Python program in a child process and returns
a ``SandboxResult``; it never raises for anything the program does.

Threat model: the program is hostile and may use anything the interpreter offers (``ctypes``,
``subprocess``, native extensions, signals). It must not write outside its working directory,
reach the network or a host Unix socket, start another executable, read the trainer's memory or
environment, signal or trace the trainer, or leave a process behind. It may read host files that
are readable to it (data, the standard library); it may use its CPU, memory and output budgets.

Process layout: the interpreter started here is a *supervisor* that never runs the program. It
forks the program's process (own process group; ``PR_SET_PDEATHSIG``), is the subreaper of
everything that process starts (double forks and ``setsid`` included), and when the program ends
or this side sends SIGTERM (time or output limit) it kills and reaps every descendant before it
exits. So no process of a run survives ``run_python``.

Always (every mode):
- limits: CPU time per process (``timeout``: RLIMIT_CPU, so verdicts do not depend on load), a
  wall-clock backstop (``wall_timeout``), RLIMIT_AS (memory), RLIMIT_FSIZE, RLIMIT_NOFILE,
  RLIMIT_CORE=0, RLIMIT_NPROC; stdout/stderr caps;
- a fresh temporary working directory (removed afterwards), HOME and TMPDIR inside it, an empty
  environment (the interpreter runs with ``-I``): no secrets of the parent are inherited;
- as root, the program runs as a fresh unprivileged uid/gid per run (no supplementary groups,
  ``PR_SET_NO_NEW_PRIVS``): it cannot signal, trace or read the trainer, and RLIMIT_NPROC binds;
- Python-level guards (an audit hook): violations are *reported* (network, filesystem, secrets);
  they are defence in depth, not a boundary.

Kernel isolation (``isolation``):
- "namespace": new network (down loopback only), mount (everything read-only but the working
  directory; private tmpfs on /tmp, /var/tmp, /dev/shm) and PID namespaces (own /proc; the
  trainer is invisible and unsignalable), plus the two layers below where the kernel has them;
- "landlock" (the fallback where namespaces are refused, e.g. many containers): Landlock confines
  writes to the working directory, ``execve`` to the interpreter (plus ``allow_exec``), /proc to
  the program's own entries, TCP bind/connect (ABI 4) and signals / abstract Unix sockets to the
  program's own processes (ABI 6); and a seccomp filter refuses ``socket()`` (host filesystem
  Unix sockets included), io_uring, ptrace, process_vm_*, pidfd_getfd, mounts, new namespaces,
  keyrings, bpf, perf and module loading (and, where nothing else confines signals, every
  signal but to the program's own process group);
- "auto": "namespace" where the kernel allows it, else "landlock", else a ``setup_error`` that
  says so: untrusted code never runs without kernel isolation unless the config says
- "none" explicitly (limits, uid drop and guards only).
``sandbox_capabilities(mode)`` reports what this machine enforces in each mode.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

ISOLATION_MODES = ("auto", "namespace", "landlock", "none")

# Outcome statuses.
OK, FAILED, TIMEOUT, MEMORY, VIOLATION, OUTPUT_LIMIT, SETUP_ERROR = (
    "ok", "failed", "timeout", "memory", "violation", "output_limit", "setup_error")


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
  """Limits of one sandboxed run.

  Attributes:
    timeout: the time limit, in CPU seconds of each process (RLIMIT_CPU = ceil(timeout)), so a
      verdict does not depend on machine load; a program past it has status ``timeout``.
    cpu_seconds: overrides the RLIMIT_CPU that ``timeout`` sets.
    wall_timeout: wall-clock backstop for programs that wait instead of computing (default
      ``3 * timeout + 2``: a machine up to ~3x oversubscribed gives the same verdicts as an idle
      one); the whole tree is killed at it, status ``timeout``.
    memory_mb: RLIMIT_AS per process, MiB.
    max_processes: RLIMIT_NPROC (processes + threads of the sandbox uid).
    max_file_mb: RLIMIT_FSIZE, MiB per file written.
    max_output_bytes: cap on each of stdout and stderr.
    isolation: "auto" (namespaces where the kernel allows them, else "landlock"; a run fails
      with status ``setup_error`` when neither is available), "namespace" (required; "os" is an
      alias), "landlock" (Landlock + seccomp without namespaces: the fallback, forced), or "none"
      (rlimits, the uid drop as root and the Python guards only: no kernel isolation; must be
      asked for explicitly).
    python_guards: install the audit-hook guards (network / filesystem), which report violations.
    python: interpreter to run; default: this interpreter if every user can read it, else
      /usr/bin/python3 (a dropped uid must be able to import the standard library).
    allow_exec: executables besides the interpreter the program may ``execve`` (Landlock), e.g.
      ``("/usr/bin/gcc",)`` for a reward that compiles code.
  """

  timeout: float = 5.0
  cpu_seconds: int | None = None
  wall_timeout: float | None = None
  memory_mb: int = 1024
  max_processes: int = 64
  max_file_mb: int = 16
  max_output_bytes: int = 1 << 16
  isolation: str = "auto"
  python_guards: bool = True
  python: str | None = None
  allow_exec: tuple[str, ...] = ()

  def __post_init__(self):
    if self.isolation not in ISOLATION_MODES + ("os",):
      hint = (" (Python-level guards are not isolation: use 'landlock', or 'none' to run without "
              "kernel isolation)" if self.isolation == "python" else "")
      raise ValueError(f"SandboxConfig.isolation={self.isolation!r}: allowed values are "
                       f"{', '.join(map(repr, ISOLATION_MODES))}{hint}")
    if self.isolation == "os":
      object.__setattr__(self, "isolation", "namespace")


@dataclasses.dataclass
class SandboxResult:
  status: str               # ok | failed | timeout | memory | violation | output_limit | setup_error
  returncode: int | None
  stdout: str
  stderr: str
  wall_time: float
  violations: list[str]     # distinct kinds reported by the guards: network, filesystem,
                            # secrets, process
  enforced: dict[str, bool]  # what the run actually had (see module docstring)
  record: bytes = b""       # what a harness wrote to its private record pipe

  @property
  def passed(self) -> bool:
    return self.status == OK


_BOOT = r'''
import ctypes, json, os, resource, signal, struct, sys
cfg = json.loads(sys.argv[1])
SFD = cfg["status_fd"]
def emit(**kw):
    try:
        os.write(SFD, (json.dumps(kw) + "\n").encode())
    except OSError:
        pass
wd = cfg["workdir"]
mode = cfg["isolation"]
enf = {"network": False, "readonly_fs": False, "private_tmp": False, "pid_namespace": False,
       "uid_drop": False, "nproc_limit": False, "landlock": 0, "fs_writes_confined": False,
       "exec_confined": False, "seccomp": False, "unix_sockets_blocked": False,
       "signals_confined": False, "process_sweep": True}
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.syscall.restype = ctypes.c_long
NEWNS, NEWNET, NEWPID, NEWUSER = 0x20000, 0x40000000, 0x20000000, 0x10000000
RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC, PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
def mount(src, tgt, fs, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    return libc.mount(enc(src), enc(tgt), enc(fs), flags, enc(data)) == 0
root = os.geteuid() == 0
ARCH = os.uname().machine
# Landlock ABI version (0: unavailable). Syscalls 444-446 on every architecture.
ll_abi = max(0, libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))
seccomp_ok = ARCH in ("x86_64", "aarch64")
ns = False
if mode in ("auto", "namespace"):
    flags = NEWNS | NEWNET | NEWPID | (0 if root else NEWUSER)
    ns = libc.unshare(flags) == 0
    err = ctypes.get_errno()
    if ns and not root:
        uid, gid = os.getuid(), os.getgid()
        for f, v in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                     ("/proc/self/gid_map", f"{gid} {gid} 1")):
            with open(f, "w") as fh:
                fh.write(v)
    if not ns and mode == "namespace":
        emit(setup_error="isolation='namespace': unshare failed, errno %d" % err)
        os._exit(97)
    if not ns:
        mode = "landlock"
if mode == "landlock" and not (ll_abi >= 1 and seccomp_ok):
    emit(setup_error=("isolation=%r: no kernel isolation on this machine (namespaces refused, "
                      "Landlock ABI %d, seccomp %s); set isolation='none' to run untrusted code "
                      "without it" % (cfg["isolation"], ll_abi, "available" if seccomp_ok else
                                      "unsupported on " + ARCH)))
    os._exit(97)
enf["mode"] = "namespace" if ns else mode

# --- The supervisor: this process never runs the program. It forks the program's process,
# becomes the subreaper of everything that process starts (double forks and setsid included),
# and when the program ends or the parent sends SIGTERM (time or output limit) it kills and reaps
# every descendant before it exits with the program's status. The program cannot signal it: it
# lives outside the program's PID namespace / Landlock signal scope / uid.
class _Stop(Exception):
    pass
def _on_term(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stop()
signal.signal(signal.SIGTERM, _on_term)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
# SIGTERM is held from the fork until the supervisor's loop (or the child's reset) is ready, so a
# stop request in between is neither lost nor able to end the supervisor before its sweep.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
supervisor = os.getpid()
child = os.fork()
if child:
    status = None
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        while status is None:
            try:
                _, st = os.waitpid(child, 0)
                status = os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)
            except ChildProcessError:
                status = 1
    except _Stop:
        status = 128 + signal.SIGKILL
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import time
    me = os.getpid()
    def kids():  # this process's children, from its own pid namespace's view of /proc
        out = set()
        try:
            for p in os.listdir("/proc"):
                if p.isdigit():
                    try:
                        with open(f"/proc/{p}/stat", "rb") as f:
                            if int(f.read().rsplit(b")", 1)[1].split()[1]) == me:
                                out.add(int(p))
                    except (OSError, ValueError, IndexError):
                        pass
        except OSError:
            pass
        return out
    if status == 128 + signal.SIGKILL:  # stopped from outside: the program is still running
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while True:  # until no descendant is left (orphans are re-parented to this process)
        for k in kids():
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            break
        time.sleep(0.002)
    os._exit(status)

# --- The program's process.
libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: SIGKILL if the supervisor dies (set again below)
if not ns and os.getppid() != supervisor:  # it died before the line above
    os._exit(1)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
os.setpgid(0, 0)  # its own process group: kill(0, ...) reaches only the program's processes
if ns:
    enf["network"] = enf["pid_namespace"] = enf["signals_confined"] = True
    mount(None, "/", None, REC | PRIVATE)
    enf["proc"] = mount("proc", "/proc", "proc", NOSUID | NODEV | NOEXEC)
    mount(wd, wd, None, BIND)
    os.chdir(wd)
    wfd = os.open(wd, os.O_PATH)
    names = {"ro": RDONLY, "nosuid": NOSUID, "nodev": NODEV, "noexec": NOEXEC}
    ro_ok = True
    seen = set()
    for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
        parts = line.split()
        mp, opts = parts[4].replace("\\040", " "), parts[5].split(",")
        if mp in seen or mp == wd or mp.split("/")[1] in ("proc", "sys", "dev"):
            continue
        seen.add(mp)
        fl = REMOUNT | BIND | RDONLY
        for o in opts:
            fl |= names.get(o, 0)
        if not mount(None, mp, None, fl):
            ro_ok = False
    enf["readonly_fs"] = ro_ok
    tmp_ok = True
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(d):
            tmp_ok &= mount("tmpfs", d, "tmpfs", NOSUID | NODEV, "size=64m,mode=1777")
    enf["private_tmp"] = tmp_ok
    if not os.path.isdir(wd):
        os.makedirs(wd, exist_ok=True)
        mount(f"/proc/self/fd/{wfd}", wd, None, BIND)
    os.chdir(wd)
    os.close(wfd)
lim = cfg["limits"]
for res, v in ((resource.RLIMIT_AS, lim["as"]), (resource.RLIMIT_CPU, lim["cpu"]),
               (resource.RLIMIT_FSIZE, lim["fsize"]), (resource.RLIMIT_NOFILE, 256),
               (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, lim["nproc"])):
    try:
        resource.setrlimit(res, (v, v + (1 if res == resource.RLIMIT_CPU else 0)))
    except (ValueError, OSError):
        pass
if root and cfg["uid"]:
    u = cfg["uid"]
    try:
        os.chown(wd, u, u)
        for base, dirs, files in os.walk(wd):
            for f in dirs + files:
                os.chown(os.path.join(base, f), u, u)
        os.setgroups([])
        os.setgid(u)
        os.setuid(u)
        enf["uid_drop"] = enf["nproc_limit"] = enf["signals_confined"] = True
    except OSError as e:
        emit(setup_warning=f"uid drop failed: {e}")
elif not root:
    enf["nproc_limit"] = True
libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG again: a uid change clears it
WD = os.path.realpath(wd)
if mode != "none" and ll_abi >= 1:
    # Landlock: writes only beneath the working directory (and /dev/null), execve only of the
    # interpreter (and cfg["allow_exec"]); without namespaces, /proc unreadable but for this
    # process's own entries; TCP bind/connect denied (ABI 4); signals and abstract Unix sockets
    # scoped to the program's own processes (ABI 6).
    EXE, WRITE, READ, READ_DIR = 1, 2, 4, 8
    fs_all = (1 << 13) - 1
    if ll_abi >= 2:
        fs_all |= 1 << 13  # REFER
    if ll_abi >= 3:
        fs_all |= 1 << 14  # TRUNCATE
    if ll_abi >= 5:
        fs_all |= 1 << 15  # IOCTL_DEV
    file_rights = fs_all & (EXE | WRITE | READ | (1 << 14) | (1 << 15))
    net = 3 if ll_abi >= 4 else 0
    scoped = 3 if ll_abi >= 6 else 0
    attr = struct.pack("<QQQ", fs_all, net, scoped)[:24 if ll_abi >= 6 else 16 if ll_abi >= 4 else 8]
    rs = libc.syscall(444, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    ok = rs >= 0
    def allow(path, rights):
        global ok
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return
        if not os.path.isdir(path):
            rights &= file_rights
        rule = struct.pack("<Qi", rights & fs_all, fd)
        if libc.syscall(445, ctypes.c_int(rs), ctypes.c_int(1), rule, ctypes.c_uint32(0)) != 0:
            ok = False
        os.close(fd)
    def elf_interp(path):
        try:
            with open(path, "rb") as f:
                h = f.read(64)
                if h[:5] != b"\x7fELF\x02":
                    return None
                phoff, = struct.unpack_from("<Q", h, 32)
                phsize, phnum = struct.unpack_from("<HH", h, 54)
                for i in range(phnum):
                    f.seek(phoff + i * phsize)
                    p = f.read(phsize)
                    if struct.unpack_from("<I", p, 0)[0] == 3:  # PT_INTERP
                        off, = struct.unpack_from("<Q", p, 8)
                        size, = struct.unpack_from("<Q", p, 32)
                        f.seek(off)
                        return f.read(size).rstrip(b"\0").decode()
        except (OSError, struct.error, UnicodeDecodeError):
            return None
    if ok:
        if ns:
            allow("/", READ | READ_DIR)
        else:
            allow("/", READ_DIR)
            for name in os.listdir("/"):
                if name != "proc":
                    allow("/" + name, READ | READ_DIR)
            for p in ("/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat"):
                allow(os.path.realpath(p), READ | READ_DIR)
        allow(WD, fs_all & ~EXE)
        allow("/dev/null", READ | WRITE | (1 << 14) | (1 << 15))
        exe = os.path.realpath(sys.executable)
        for p in [exe, elf_interp(exe)] + list(cfg["allow_exec"]):
            if p:
                allow(os.path.realpath(p), EXE | READ)
        ok = ok and libc.syscall(446, ctypes.c_int(rs), ctypes.c_uint32(0)) == 0
    if rs >= 0:
        os.close(rs)
    if ok:
        enf["landlock"] = ll_abi
        enf["fs_writes_confined"] = enf["exec_confined"] = True
        enf["network"] |= net != 0
        enf["signals_confined"] |= scoped != 0
    elif not ns:
        emit(setup_error="Landlock ABI %d refused the ruleset (errno %d)" % (ll_abi, ctypes.get_errno()))
        os._exit(97)
if mode != "none" and seccomp_ok:
    # seccomp: no socket() at all (filesystem Unix sockets of the host are reachable otherwise),
    # no io_uring (it bypasses seccomp), no ptrace/process_vm/pidfd_getfd (other processes'
    # memory and files), no mounts, namespaces, keyrings, bpf, perf, module loading; clone3 is
    # ENOSYS (glibc falls back to clone, whose namespace flags are refused). Where nothing else
    # confines signals, only kill(0, sig) (the program's own group) is allowed.
    X86 = ARCH == "x86_64"
    nr = dict(zip(
        ("socket ptrace process_vm_readv process_vm_writev pidfd_getfd mount umount2 unshare "
         "setns pivot_root chroot bpf perf_event_open userfaultfd keyctl add_key request_key "
         "init_module finit_module kexec_load open_by_handle_at name_to_handle_at kill tkill "
         "tgkill rt_sigqueueinfo rt_tgsigqueueinfo clone").split(),
        (41, 101, 310, 311, 438, 165, 166, 272, 308, 155, 161, 321, 298, 323, 250, 248, 249, 175,
         313, 246, 304, 303, 62, 200, 234, 129, 297, 56) if X86 else
        (198, 117, 270, 271, 438, 40, 39, 97, 268, 41, 51, 280, 241, 282, 219, 217, 218, 105, 273,
         104, 265, 264, 129, 130, 131, 138, 240, 220)))
    EPERM, EACCES, ENOSYS = 1, 13, 38
    LD, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
    ALLOW, KILL, ERR = 0x7FFF0000, 0x80000000, 0x00050000
    deny = [(nr["socket"], EACCES), (435, ENOSYS)]  # clone3
    deny += [(nr[k], EPERM) for k in (
        "ptrace process_vm_readv process_vm_writev pidfd_getfd mount umount2 unshare setns "
        "pivot_root chroot bpf perf_event_open userfaultfd keyctl add_key request_key init_module "
        "finit_module kexec_load open_by_handle_at name_to_handle_at").split()]
    deny += [(n, EPERM) for n in (425, 426, 427, 428, 429, 430, 431, 432, 433, 442)]
    sig_free = not enf["signals_confined"]
    if sig_free:
        deny += [(nr[k], EPERM) for k in "tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo".split()]
        deny += [(424, EPERM)]  # pidfd_send_signal
    prog = [(LD, 0, 0, 4), (JEQ, 1, 0, 0xC000003E if X86 else 0xC00000B7), (RET, 0, 0, KILL),
            (LD, 0, 0, 0)]
    if X86:
        prog += [(JGE, 0, 1, 0x40000000), (RET, 0, 0, ERR | ENOSYS)]  # the x32 ABI
    for n, e in deny:
        prog += [(JEQ, 0, 1, n), (RET, 0, 0, ERR | e)]
    NSFLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
    prog += [(JEQ, 0, 4, nr["clone"]), (LD, 0, 0, 16), (JSET, 0, 1, NSFLAGS),
             (RET, 0, 0, ERR | EPERM), (RET, 0, 0, ALLOW)]
    if sig_free:
        prog += [(JEQ, 0, 4, nr["kill"]), (LD, 0, 0, 16), (JEQ, 0, 1, 0), (RET, 0, 0, ALLOW),
                 (RET, 0, 0, ERR | EPERM)]
    prog += [(RET, 0, 0, ALLOW)]
    buf = ctypes.create_string_buffer(b"".join(struct.pack("<HBBI", *i) for i in prog))
    class _Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fprog = _Prog(len(prog), ctypes.addressof(buf))
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0:  # PR_SET_SECCOMP, MODE_FILTER
        enf["seccomp"] = enf["unix_sockets_blocked"] = enf["network"] = True
        enf["signals_confined"] = True
    elif not ns:
        emit(setup_error="seccomp filter refused (errno %d)" % ctypes.get_errno())
        os._exit(97)
if cfg["guards"]:
    import socket as _socket
    block_procs = root and not enf["uid_drop"]
    def _outside(p):
        if isinstance(p, int) or p is None:
            return False
        p = os.path.realpath(os.fsdecode(p))
        return not (p == WD or p.startswith(WD + os.sep) or p == "/dev/null")
    W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    FS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link",
          "os.chmod", "os.chown", "os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile",
          "shutil.move", "os.replace"}
    NET = {"socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
           "socket.gethostbyaddr", "socket.sendto"}
    PROCS = {"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system",
             "subprocess.Popen"}
    def _deny(kind, detail):
        emit(violation=kind, detail=str(detail)[:200])
        raise PermissionError(f"sandbox: {kind} access denied ({detail})")
    def _hook(event, args):
        if event == "open":
            path, mode, fl = args
            if isinstance(path, (str, bytes)):
                parts = os.fsdecode(path).split("/")
                if (len(parts) == 4 and parts[1] == "proc" and parts[3] == "environ"
                        and parts[2].isdigit() and int(parts[2]) != os.getpid()):
                    _deny("secrets", path)
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(fl, int) and fl & W)
            if writing and _outside(path):
                _deny("filesystem", path)
        elif event in FS:
            for a in args[:2]:
                if isinstance(a, (str, bytes, os.PathLike)) and _outside(a):
                    _deny("filesystem", a)
        elif event == "socket.__new__":
            if args[1] not in (getattr(_socket, "AF_UNIX", 1), -1):
                _deny("network", "socket family %s" % args[1])
        elif event in NET:
            _deny("network", event)
        elif block_procs and event in PROCS:
            _deny("process", event)
    sys.addaudithook(_hook)
emit(enforced=enf)
sys.path.insert(0, WD)
sys.dont_write_bytecode = True
if cfg.get("harness") is not None:  # a harness (not on disk) that runs solution.py itself
    sys.argv = ["solution.py"]
    src, fname = cfg["harness"], "<harness>"
    glb = {"__name__": "__rlx_harness__", "__builtins__": __builtins__,
           "RECORD_FD": cfg["record_fd"]}
else:
    sys.argv = ["main.py"]
    src, fname = open(os.path.join(WD, "main.py")).read(), "main.py"
    glb = {"__name__": "__main__", "__builtins__": __builtins__}
del cfg, libc, resource
try:
    exec(compile(src, fname, "exec"), glb)
except MemoryError:
    emit(memory=True)
    sys.stdout.flush()
    os._exit(3)
except SystemExit:
    raise
except BaseException:
    import traceback
    traceback.print_exc()
    sys.stdout.flush()
    sys.exit(1)
'''


def _world_readable(path: str) -> bool:
  """Every user can traverse to ``path`` and read it (needed after a uid drop)."""
  path = os.path.realpath(path)
  parts = path.split(os.sep)
  for k in range(2, len(parts) + 1):
    p = os.sep.join(parts[:k]) or os.sep
    try:
      mode = os.stat(p).st_mode
    except OSError:
      return False
    need = stat.S_IXOTH if stat.S_ISDIR(mode) else stat.S_IROTH
    if not mode & need:
      return False
  return True


@functools.lru_cache(maxsize=None)
def _default_python() -> str:
  exe = os.path.realpath(sys.executable)
  lib = os.path.dirname(os.__file__)
  if os.geteuid() != 0 or (_world_readable(exe) and _world_readable(os.path.join(lib, "os.py"))):
    return exe
  for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
    if os.path.exists(cand) and _world_readable(cand):
      return cand
  return exe


def _reader(stream, cap, out: list, overflow: threading.Event, on_overflow):
  total = 0
  while True:
    chunk = stream.read(8192)
    if not chunk:
      break
    if total < cap:
      out.append(chunk[:cap - total])
    total += len(chunk)
    if total > cap and not overflow.is_set():
      overflow.set()
      on_overflow()
  stream.close()


def _kill_tree(proc: subprocess.Popen, uid: int | None):
  """Stops a run: SIGTERM asks the supervisor to kill and reap every process of the program
  (it is their subreaper, or their PID namespace's parent); SIGKILL to its group if it does not
  exit in 5 s; then anything left under the run's private uid (root only)."""
  if proc.poll() is None:
    try:
      os.kill(proc.pid, signal.SIGTERM)
      proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
      try:
        os.killpg(proc.pid, signal.SIGKILL)
      except (ProcessLookupError, PermissionError):
        pass
    except ProcessLookupError:
      pass
  if uid:  # anything left running under the run's private uid (it owns nothing else)
    for _ in range(100):
      left = _uid_pids(uid)
      if not left:
        break
      for pid in left:
        try:
          os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
          pass
      time.sleep(0.01)


def run_python(code: str, *, stdin: str = "", config: SandboxConfig = SandboxConfig(),
               files: dict[str, str] | None = None, harness: str | None = None) -> SandboxResult:
  """Runs ``code`` as ``main.py`` in a fresh sandbox (see the module docstring); never raises
  for what the program does. ``files`` are extra files written into the working directory.

  With ``harness`` (Python source), ``code`` is written as ``solution.py`` and the harness runs
  instead, in the same sandboxed interpreter (after the same isolation, limits and guards); the
  harness source is never written to disk. Its globals hold ``RECORD_FD``, the write end of a
  private pipe whose contents (up to 64 KiB) come back as ``SandboxResult.record``; ``stdin``
  goes to the harness (it should read it before running the solution).
  """
  start = time.monotonic()
  wd = tempfile.mkdtemp(prefix="rlx_sandbox_")
  os.chmod(wd, 0o700)
  root = os.geteuid() == 0
  uid = random.SystemRandom().randrange(200_000, 1_000_000) if root else None
  r_fd, w_fd = os.pipe()
  rec_r, rec_w = os.pipe() if harness is not None else (-1, -1)
  proc = None
  try:
    with open(os.path.join(wd, "main.py" if harness is None else "solution.py"), "w") as f:
      f.write(code)
    for name, text in (files or {}).items():
      path = os.path.join(wd, name)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(path, "w") as f:
        f.write(text)
    cpu = config.cpu_seconds or max(1, math.ceil(config.timeout))
    cfg = {"status_fd": w_fd, "workdir": wd, "isolation": config.isolation,
           "guards": config.python_guards, "uid": uid, "allow_exec": list(config.allow_exec),
           "limits": {"as": config.memory_mb << 20, "cpu": cpu,
                      "fsize": config.max_file_mb << 20, "nproc": config.max_processes}}
    if harness is not None:
      cfg["harness"], cfg["record_fd"] = harness, rec_w
    if not root:  # RLIMIT_NPROC counts all processes of this uid: leave room for the existing ones
      cfg["limits"]["nproc"] = config.max_processes + len(_uid_pids(os.getuid()))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": wd, "TMPDIR": wd}
    python = config.python or _default_python()
    proc = subprocess.Popen(
        [python, "-I", "-B", "-c", _BOOT, json.dumps(cfg)], cwd=wd, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        pass_fds=(w_fd,) if harness is None else (w_fd, rec_w), start_new_session=True,
        close_fds=True)
    os.close(w_fd)
    w_fd = -1
    if rec_w >= 0:
      os.close(rec_w)
      rec_w = -1
    overflow = threading.Event()
    outs: list[bytes] = []
    errs: list[bytes] = []
    kill = lambda: _kill_tree(proc, uid)
    threads = [threading.Thread(target=_reader, args=(s, config.max_output_bytes, buf, overflow,
                                                      kill), daemon=True)
               for s, buf in ((proc.stdout, outs), (proc.stderr, errs))]
    status_lines: list[bytes] = []
    threads.append(threading.Thread(target=_reader, args=(os.fdopen(r_fd, "rb", 0), 1 << 16,
                                                          status_lines, threading.Event(),
                                                          lambda: None), daemon=True))
    r_fd = -1
    record: list[bytes] = []
    if rec_r >= 0:
      threads.append(threading.Thread(target=_reader, args=(os.fdopen(rec_r, "rb", 0), 1 << 16,
                                                            record, threading.Event(),
                                                            lambda: None), daemon=True))
      rec_r = -1
    for t in threads:
      t.start()
    try:
      if stdin:
        proc.stdin.write(stdin.encode())
      proc.stdin.close()
    except (BrokenPipeError, OSError):
      pass
    timed_out = False
    try:
      proc.wait(timeout=config.wall_timeout or 3.0 * config.timeout + 2.0)
    except subprocess.TimeoutExpired:
      timed_out = True
    kill()  # the session may still hold forked children
    proc.wait()
    for t in threads:
      t.join(timeout=2.0)
    info = _parse_status(b"".join(status_lines))
    stdout = b"".join(outs).decode("utf-8", "replace")
    stderr = b"".join(errs).decode("utf-8", "replace")
    rc = proc.returncode
    if "setup_error" in info:
      status = SETUP_ERROR
      stderr = info["setup_error"] + "\n" + stderr
    elif timed_out:
      status = TIMEOUT
    elif overflow.is_set():
      status = OUTPUT_LIMIT
    elif info["violations"]:
      status = VIOLATION
    elif info["memory"] or "MemoryError" in stderr[-2000:]:
      status = MEMORY
    elif rc == 0:
      status = OK
    elif rc in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
      status = TIMEOUT  # CPU limit
    else:
      status = FAILED
    return SandboxResult(status, rc, stdout, stderr, time.monotonic() - start,
                         info["violations"], info["enforced"], b"".join(record))
  except Exception as e:  # noqa: BLE001 - the sandbox itself failed
    if proc is not None:
      _kill_tree(proc, uid)
    return SandboxResult(SETUP_ERROR, None, "", f"{type(e).__name__}: {e}",
                         time.monotonic() - start, [], {})
  finally:
    for fd in (r_fd, w_fd, rec_r, rec_w):
      if fd >= 0:
        os.close(fd)
    shutil.rmtree(wd, ignore_errors=True)


def _parse_status(raw: bytes) -> dict:
  info = {"violations": [], "enforced": {}, "memory": False}
  for line in raw.decode("utf-8", "replace").splitlines():
    try:
      msg = json.loads(line)
    except ValueError:
      continue
    if not isinstance(msg, dict):
      continue
    if "violation" in msg and str(msg["violation"]) not in info["violations"]:
      info["violations"].append(str(msg["violation"]))
    if "enforced" in msg and isinstance(msg["enforced"], dict):
      info["enforced"] = msg["enforced"]
    if msg.get("memory"):
      info["memory"] = True
    if "setup_error" in msg:
      info["setup_error"] = str(msg["setup_error"])
  return info


def _uid_pids(uid: int) -> list[int]:
  """The pids of every process owned by ``uid`` (as /proc shows them)."""
  pids = []
  for pid in os.listdir("/proc"):
    if pid.isdigit():
      try:
        if os.stat(f"/proc/{pid}").st_uid == uid:
          pids.append(int(pid))
      except OSError:
        pass
  return pids


@functools.lru_cache(maxsize=None)
def sandbox_capabilities(isolation: str = "auto") -> dict:
  """What the sandbox enforces on this machine in mode ``isolation`` (runs one trivial program
  once): ``works``, ``mode`` (the mode a run gets), ``error`` (why it cannot run, if so), and one
  flag per protection (see the module docstring; ``landlock`` is the Landlock ABI used, 0 if
  none)."""
  res = run_python("print('ok')", config=SandboxConfig(timeout=10.0, isolation=isolation))
  out = dict(res.enforced, works=res.passed)
  if not res.passed:
    out["error"] = res.stderr.strip().splitlines()[0] if res.stderr.strip() else res.status
  return out


def require_isolation(isolation: str) -> None:
  """Raises ``RuntimeError`` naming the cause when untrusted code cannot run under
  ``isolation`` on this machine (``"none"`` always can): rewards call it when built."""
  if isolation == "none":
    return
  cap = sandbox_capabilities(SandboxConfig(isolation=isolation).isolation)
  if not cap["works"]:
    raise RuntimeError(f"the code sandbox cannot run with isolation={isolation!r} on this machine: "
                       f"{cap.get('error')}. Set isolation='none' to run untrusted code without "
                       "kernel isolation.")
