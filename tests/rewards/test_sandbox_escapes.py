"""Escape attempts against every kernel isolation mode this machine offers (docs/rewards.md,
"Threat model"). The Python guards are off in these runs: what holds is what the kernel enforces.
Each attack is written against the host directly (``sh -c``, ``ctypes`` into libc), and after each
run no process of the sandbox may be left alive."""

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import pytest

from rlx.rewards import sandbox
from rlx.rewards.sandbox import SandboxConfig, run_python, sandbox_capabilities

MODES = [m for m in ("namespace", "landlock") if sandbox_capabilities(m)["works"]]
pytestmark = pytest.mark.skipif(not MODES, reason="no kernel isolation on this machine")

LIBC = """
import ctypes, os, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
def c_open_write(path):
    fd = libc.open(path.encode(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    if fd < 0:
        return "open errno %d" % ctypes.get_errno()
    n = libc.write(fd, b"escaped", 7)
    libc.close(fd)
    return "wrote %d" % n
def c_connect_unix(path):
    s = libc.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
    if s < 0:
        return "socket errno %d" % ctypes.get_errno()
    addr = struct.pack("H", socket.AF_UNIX) + path.encode() + b"\\0" * (108 - len(path))
    r = libc.connect(s, addr, len(addr))
    return "connect errno %d" % ctypes.get_errno() if r else "connected"
def c_connect_tcp(port):
    s = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    if s < 0:
        return "socket errno %d" % ctypes.get_errno()
    addr = struct.pack("!HH4s8x", socket.AF_INET, port, bytes([127, 0, 0, 1]))
    addr = struct.pack("H", socket.AF_INET) + addr[2:]
    r = libc.connect(s, addr, len(addr))
    return "connect errno %d" % ctypes.get_errno() if r else "connected"
"""


def _run(mode, code, **kw):
  cfg = SandboxConfig(timeout=kw.pop("timeout", 4.0), memory_mb=512, max_processes=32,
                      isolation=mode, python_guards=False, **kw)
  return run_python(LIBC + textwrap.dedent(code), config=cfg)


def _survivors(marker):
  found = []
  for pid in os.listdir("/proc"):
    if pid.isdigit():
      try:
        with open(f"/proc/{pid}/comm") as f:
          if f.read().strip() == marker:
            found.append(int(pid))
      except OSError:
        pass
  return found


def _host_base():
  """Where to put host files the program attacks: a directory every user can reach (a dropped
  uid must not be stopped by its parents) and that the namespace mode does not hide behind its
  private tmpfs mounts (/tmp, /var/tmp, /dev/shm), so that Landlock and the read-only mounts are
  what stops the attack; the temporary directory only when nothing else qualifies."""
  for base in ("/run", os.path.dirname(os.path.abspath(__file__)), tempfile.gettempdir()):
    if os.access(base, os.W_OK) and sandbox._world_readable(base):
      return base
  return None


@pytest.fixture
def public_tmp():
  base = _host_base()
  if base is None:
    pytest.skip("no directory every user can reach")
  d = tempfile.mkdtemp(dir=base, prefix="rlx_escape_")
  os.chmod(d, 0o755)
  yield pathlib.Path(d)
  shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def open_dir(public_tmp):
  """A directory anyone may write (so only the sandbox, not file permissions, stops a write)."""
  if not sandbox._world_readable(str(public_tmp)):
    pytest.skip("the temporary directory's parents are not world-searchable")
  d = public_tmp / "open"
  d.mkdir()
  os.chmod(d, 0o777)
  return d


@pytest.mark.parametrize("mode", MODES)
def test_shell_and_ctypes_writes_do_not_reach_the_host(mode, open_dir):
  a, b, c = (str(open_dir / n) for n in ("sh", "ctypes", "py"))
  res = _run(mode, f"""
      import subprocess
      try:
          r = subprocess.run(["sh", "-c", "echo escaped > {a}"], capture_output=True)
          print("sh rc", r.returncode)
      except OSError as e:
          print("sh refused", e)
      print(c_open_write({b!r}))
      try:
          open({c!r}, "w").write("escaped")
      except OSError as e:
          print("open refused", e)
      """)
  assert res.status == "ok", res.stderr
  assert not os.listdir(open_dir), res.stdout
  if mode == "landlock" or sandbox_capabilities(mode)["exec_confined"]:
    assert "sh refused" in res.stdout  # execve of anything but the interpreter


@pytest.mark.parametrize("mode", MODES)
def test_unix_socket_of_the_host_is_unreachable(mode, open_dir):
  path = str(open_dir / "s")
  srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
  srv.bind(path)
  os.chmod(path, 0o666)
  srv.listen(4)
  srv.settimeout(0.2)
  try:
    res = _run(mode, f"print(c_connect_unix({path!r}))\n"
                     f"import socket\n"
                     f"try:\n"
                     f"    socket.socket(socket.AF_UNIX).connect({path!r}); print('py connected')\n"
                     f"except OSError as e:\n"
                     f"    print('py refused', e)\n")
    assert res.status == "ok", res.stderr
    assert "connected" not in res.stdout.replace("py refused", ""), res.stdout
    with pytest.raises(socket.timeout):
      srv.accept()
  finally:
    srv.close()


@pytest.mark.parametrize("mode", MODES)
def test_loopback_connect_fails(mode):
  srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
  srv.bind(("127.0.0.1", 0))
  srv.listen(4)
  srv.settimeout(0.2)
  try:
    res = _run(mode, f"print(c_connect_tcp({srv.getsockname()[1]}))")
    assert res.status == "ok" and "connected" not in res.stdout, (res.stdout, res.stderr)
    with pytest.raises(socket.timeout):
      srv.accept()
  finally:
    srv.close()


@pytest.mark.parametrize("mode", MODES)
def test_parent_environment_is_unreadable(mode, monkeypatch):
  monkeypatch.setenv("RLX_ESCAPE_SECRET", "RLX_ESCAPE_SECRET_VALUE")
  res = _run(mode, """
      import glob
      leak = "RLX_ESCAPE_SECRET_VALUE" in repr(dict(os.environ))
      paths = glob.glob("/proc/[0-9]*/environ") + ["/proc/%d/environ" % os.getppid()]
      for p in paths:
          fd = libc.open(p.encode(), os.O_RDONLY)
          if fd >= 0:
              buf = ctypes.create_string_buffer(1 << 16)
              n = libc.read(fd, buf, 1 << 16)
              leak |= n > 0 and b"RLX_ESCAPE_SECRET_VALUE" in buf.raw[:n]
      print("LEAK" if leak else "clean")
      """)
  assert res.status == "ok" and res.stdout.strip() == "clean", (res.stdout, res.stderr)


@pytest.mark.parametrize("mode", MODES)
def test_double_fork_setsid_survivors_are_killed(mode):
  marker = "rlx" + uuid.uuid4().hex[:10]
  res = _run(mode, f"""
      import signal, time
      def hide():
          libc.prctl(15, {marker!r}.encode(), 0, 0, 0)  # PR_SET_NAME: how the test finds it
          signal.signal(signal.SIGTERM, signal.SIG_IGN)
          signal.signal(signal.SIGHUP, signal.SIG_IGN)
      for _ in range(3):
          if os.fork() == 0:
              os.setsid()
              if os.fork() == 0:
                  hide()
                  while True:
                      time.sleep(0.05)
              os._exit(0)
      time.sleep(0.3)
      print("detached")
      """, timeout=3.0)
  assert "detached" in res.stdout, res.stderr
  assert _survivors(marker) == []


@pytest.mark.parametrize("mode", MODES)
def test_survivors_of_a_timeout_are_killed(mode):
  marker = "rlx" + uuid.uuid4().hex[:10]
  res = _run(mode, f"""
      import signal, time
      if os.fork() == 0:
          os.setsid()
          if os.fork() == 0:
              libc.prctl(15, {marker!r}.encode(), 0, 0, 0)
              signal.signal(signal.SIGTERM, signal.SIG_IGN)
              while True:
                  time.sleep(0.05)
          os._exit(0)
      while True:
          time.sleep(0.05)
      """, timeout=1.0)
  assert res.status == "timeout"
  assert _survivors(marker) == []


KILLER = """
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
targets = [os.getppid()]
try:
    targets.append(int(open("/proc/%d/stat" % os.getppid()).read().rsplit(")", 1)[1].split()[1]))
except Exception:
    pass
targets.append(TRAINER)
for t in targets:
    for call in (lambda: os.kill(t, 9), lambda: libc.syscall(234 if os.uname().machine == "x86_64" else 131, t, t, 9),
                 lambda: os.killpg(os.getpgid(t), 9)):
        try:
            call()
        except Exception:
            pass
try:
    os.kill(-1, 9)
except Exception:
    pass
print("sent")
"""

# A "trainer": a separate process that runs the killer in the sandbox and reports that it lived.
TRAINER = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("sb", sys.argv[1])
sb = sys.modules["sb"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sb)
res = sb.run_python(sys.argv[3].replace("TRAINER", str(os.getpid())),
                    config=sb.SandboxConfig(timeout=4.0, isolation=sys.argv[2], python_guards=False))
print("ALIVE", res.status, res.enforced.get("mode"), flush=True)
"""


def _trainer_cmd(tmp_path, user):
  """The trainer's command: this interpreter as this user; as an ordinary user (when root), a
  copy of the sandbox module (stdlib only) run by a system interpreter under uid 65534."""
  src = sandbox.__file__
  if user == "self":
    return [sys.executable, "-c", TRAINER, src], {}
  if os.geteuid() != 0:
    pytest.skip("needs root to run a trainer as another user")
  py = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3")
             if os.path.exists(p) and sandbox._world_readable(p)), None)
  if py is None or not sandbox._world_readable(str(tmp_path)):
    pytest.skip("no interpreter or directory an ordinary user can use")
  d = tmp_path / "nobody"
  d.mkdir()
  shutil.copy(src, d / "sb.py")
  os.chmod(d, 0o755)
  os.chmod(d / "sb.py", 0o644)
  def drop():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
  return [py, "-c", TRAINER, str(d / "sb.py")], {"preexec_fn": drop, "cwd": str(d)}


@pytest.mark.parametrize("user", ["self", "ordinary"])
@pytest.mark.parametrize("mode", MODES)
def test_trainer_survives_every_signal_the_program_sends(mode, user, public_tmp):
  tmp_path = public_tmp
  cmd, kw = _trainer_cmd(tmp_path, user)
  env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path) if user == "self" else "/tmp"}
  out = subprocess.run(cmd + [mode, KILLER], capture_output=True, text=True, timeout=60, env=env,
                       **kw)
  if user == "ordinary" and "namespace" == mode and "setup_error" in out.stdout:
    pytest.skip("unprivileged user namespaces are refused here")
  assert out.returncode == 0 and "ALIVE ok" in out.stdout, (out.stdout, out.stderr[-2000:])


def test_none_must_be_asked_for_and_python_mode_is_gone():
  with pytest.raises(ValueError, match="isolation='python'.*'auto', 'namespace', 'landlock', 'none'"):
    SandboxConfig(isolation="python")
  assert SandboxConfig(isolation="os").isolation == "namespace"
  res = run_python("print('ok')", config=SandboxConfig(isolation="none"))
  assert res.passed and res.enforced["mode"] == "none" and not res.enforced["seccomp"]


def test_no_kernel_isolation_is_a_clear_error(monkeypatch):
  """Where neither namespaces nor Landlock work, "auto" refuses (the boot script is told so by a
  patched probe) and the code reward's constructor names the fix."""
  boot = sandbox._BOOT.replace("ll_abi = max(0,", "ll_abi = 0 * max(0,").replace(
      "ns = libc.unshare(flags) == 0", "ns = False")
  assert boot.count("ll_abi = 0 *") == 1 and "ns = libc.unshare" not in boot
  monkeypatch.setattr(sandbox, "_BOOT", boot)
  sandbox.sandbox_capabilities.cache_clear()
  try:
    res = run_python("print('ok')", config=SandboxConfig(isolation="auto"))
    assert res.status == "setup_error" and "isolation='none'" in res.stderr
    with pytest.raises(RuntimeError, match="isolation='none'"):
      sandbox.require_isolation("auto")
  finally:
    sandbox.sandbox_capabilities.cache_clear()
