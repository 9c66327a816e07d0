"""Running untrusted completion code (docs/algorithms.md §10).

``run_python(code, stdin=..., config=...)`` runs a Python program in a child process and returns
a ``SandboxResult``; it never raises for anything the program does. What is enforced:

Always (every platform):
- wall-clock timeout: the child runs in its own session/process group, killed (SIGKILL) at the limit;
- rlimits: RLIMIT_CPU, RLIMIT_AS (memory), RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE=0, and
  RLIMIT_NPROC (effective only for a non-root uid: see below);
- a fresh temporary working directory (removed afterwards), HOME inside it;
- an empty environment (PATH/LANG/HOME only; the interpreter runs with ``-I``), so no secrets of
  the parent are inherited;
- output caps on stdout and stderr (the child is killed when it writes more);
- Python-level guards installed before the program runs (a ``sys.addaudithook`` hook): creating
  a non-Unix socket, DNS look-ups, and writing/removing/renaming files outside the working
  directory, and reading another process's ``/proc/<pid>/environ``, raise ``PermissionError``
  and are reported as violations. These guards are
  defence-in-depth, not a security boundary (native code or ctypes can bypass them).

With OS isolation (``isolation="os"``, or ``"auto"`` when the kernel allows it: root, or
unprivileged user namespaces), in addition:
- new network namespace: no interfaces but a down loopback, so no connection can succeed;
- new mount namespace: every mount remounted read-only except the working directory; fresh
  private tmpfs on /tmp, /var/tmp and /dev/shm (discarded at exit);
- new PID namespace with its own /proc: the program cannot see (or read the environment of)
  other processes, and killing the namespace's init kills every process it forked;
- when started as root: the program runs as a fresh unprivileged uid/gid (unique per run), with no
  supplementary groups and ``PR_SET_NO_NEW_PRIVS``, so RLIMIT_NPROC caps a fork bomb per run.

Not enforced: cgroup CPU/memory accounting across the process tree (each process has its own
RLIMIT_AS/CPU), seccomp syscall filtering, and disk usage beyond RLIMIT_FSIZE per file (the tmpfs
mounts are capped at 64 MiB). ``sandbox_capabilities()`` reports what this machine enforces.
"""

from __future__ import annotations

import dataclasses
import functools
import json
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

# Outcome statuses.
OK, FAILED, TIMEOUT, MEMORY, VIOLATION, OUTPUT_LIMIT, SETUP_ERROR = (
    "ok", "failed", "timeout", "memory", "violation", "output_limit", "setup_error")


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
  """Limits of one sandboxed run.

  Attributes:
    timeout: wall-clock seconds before the process group is killed.
    cpu_seconds: RLIMIT_CPU per process (default: ceil(timeout) + 1).
    memory_mb: RLIMIT_AS per process, MiB.
    max_processes: RLIMIT_NPROC (processes + threads of the sandbox uid).
    max_file_mb: RLIMIT_FSIZE, MiB per file written.
    max_output_bytes: cap on each of stdout and stderr.
    isolation: "auto" (OS isolation when available, else Python-level), "os" (required: a run
      fails with status ``setup_error`` when unavailable), or "python".
    python_guards: install the audit-hook guards (network / filesystem).
    python: interpreter to run; default: this interpreter if every user can read it, else
      /usr/bin/python3 (a dropped uid must be able to import the standard library).
  """

  timeout: float = 5.0
  cpu_seconds: int | None = None
  memory_mb: int = 1024
  max_processes: int = 64
  max_file_mb: int = 16
  max_output_bytes: int = 1 << 16
  isolation: str = "auto"
  python_guards: bool = True
  python: str | None = None


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
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
SFD = cfg["status_fd"]
def emit(**kw):
    try:
        os.write(SFD, (json.dumps(kw) + "\n").encode())
    except OSError:
        pass
wd = cfg["workdir"]
enf = {"network": False, "readonly_fs": False, "private_tmp": False, "pid_namespace": False,
       "uid_drop": False, "nproc_limit": False}
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
NEWNS, NEWNET, NEWPID, NEWUSER = 0x20000, 0x40000000, 0x20000000, 0x10000000
RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC, PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
def mount(src, tgt, fs, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    return libc.mount(enc(src), enc(tgt), enc(fs), flags, enc(data)) == 0
root = os.geteuid() == 0
ns = False
if cfg["isolation"] != "python":
    flags = NEWNS | NEWNET | NEWPID | (0 if root else NEWUSER)
    ns = libc.unshare(flags) == 0
    if ns and not root:
        uid, gid = os.getuid(), os.getgid()
        for f, v in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                     ("/proc/self/gid_map", f"{gid} {gid} 1")):
            with open(f, "w") as fh:
                fh.write(v)
    if not ns and cfg["isolation"] == "os":
        emit(setup_error="unshare failed, errno %d" % ctypes.get_errno())
        os._exit(97)
if ns:
    child = os.fork()
    if child:
        _, st = os.waitpid(child, 0)
        os._exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st))
    enf["network"] = enf["pid_namespace"] = True
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
        enf["uid_drop"] = enf["nproc_limit"] = True
    except OSError as e:
        emit(setup_warning=f"uid drop failed: {e}")
elif not root:
    enf["nproc_limit"] = True
libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
if ns:
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: SIGKILL when the outer process dies (after setuid)
WD = os.path.realpath(wd)
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
  try:
    os.killpg(proc.pid, signal.SIGKILL)
  except (ProcessLookupError, PermissionError):
    pass
  if uid:  # anything left running under the run's private uid (it owns nothing else)
    for pid in os.listdir("/proc"):
      if not pid.isdigit():
        continue
      try:
        if os.stat(f"/proc/{pid}").st_uid == uid:
          os.kill(int(pid), signal.SIGKILL)
      except (OSError, ProcessLookupError):
        pass


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
    cpu = config.cpu_seconds or int(config.timeout) + 1
    cfg = {"status_fd": w_fd, "workdir": wd, "isolation": config.isolation,
           "guards": config.python_guards, "uid": uid,
           "limits": {"as": config.memory_mb << 20, "cpu": cpu,
                      "fsize": config.max_file_mb << 20, "nproc": config.max_processes}}
    if harness is not None:
      cfg["harness"], cfg["record_fd"] = harness, rec_w
    if not root:  # RLIMIT_NPROC counts all processes of this uid: leave room for the existing ones
      cfg["limits"]["nproc"] = config.max_processes + _count_user_processes(os.getuid())
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": wd}
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
      proc.wait(timeout=config.timeout)
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


def _count_user_processes(uid: int) -> int:
  n = 0
  for pid in os.listdir("/proc"):
    if pid.isdigit():
      try:
        n += os.stat(f"/proc/{pid}").st_uid == uid
      except OSError:
        pass
  return n


@functools.lru_cache(maxsize=None)
def sandbox_capabilities() -> dict[str, bool]:
  """What the sandbox enforces on this machine (runs one trivial program once)."""
  res = run_python("print('ok')", config=SandboxConfig(timeout=10.0))
  return dict(res.enforced, works=res.passed)
