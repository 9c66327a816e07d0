"""Two ``jax.distributed`` processes on localhost (CPU collectives over gloo, 2 simulated devices
each) run three GRPO steps (``multihost_grpo.py``: per-host prompts, per-host reward scoring,
gathered group statistics) and end with the parameters of one process on 4 devices; the
checkpoint the two processes wrote restores in a one-process run onto one device; a SIGTERM on
one host stops both at the same step."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.scale.helpers import ROOT, device_env, free_port, results, run_module


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  multi = str(tmp_path_factory.mktemp("two_processes"))
  single = str(tmp_path_factory.mktemp("one_process"))
  port = free_port()
  cmd = [sys.executable, "-m", "tests.scale.multihost_grpo", "--workdir", multi,
         "--num_processes", "2", "--port", str(port)]
  procs = [subprocess.Popen(cmd + ["--process_id", str(i)], env=device_env(2), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  outs = []
  try:
    for proc in procs:
      out, err = proc.communicate(timeout=600)
      outs.append(results(subprocess.CompletedProcess(proc.args, proc.returncode, out, err)))
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
  one = results(run_module("tests.scale.multihost_grpo", "--workdir", single, "--restore_from",
                           multi, devices=4))
  return {"multi": outs, "single": one, "dirs": (multi, single)}


def test_two_processes_equal_one_process_on_four_devices(runs):
  multi, single = runs["dirs"]
  a, b = np.load(os.path.join(multi, "params.npz")), np.load(os.path.join(single, "params.npz"))
  assert a.files == b.files
  for k in a.files:
    np.testing.assert_allclose(a[k], b[k], atol=1e-5, err_msg=k)
  for out in runs["multi"]:
    np.testing.assert_allclose(out["losses"], runs["single"]["losses"], atol=1e-5)
    # each host scored only the rows its devices hold: half of the 8 samples
    assert out["local_rows"] == [4, 4, 4]
  assert runs["single"]["local_rows"] == [8, 8, 8]


def test_multiprocess_checkpoint_restores_in_one_process(runs):
  r = runs["single"]
  assert r["restored_from_processes"] == 2 and r["restored_step"] == 3
  assert r["restored_devices"] == [1]
  assert r["restored_vs_saved"] == 0.0
  assert r["params_only_vs_saved"] == 0.0  # checkpoint.init_from / export path
  assert r["params_only_spec"] == "P('fsdp', 'tensor')"


def test_sigterm_on_one_host_stops_every_host(runs):
  by_process = {out["process"]: out for out in runs["multi"]}
  assert by_process[1]["stopped"] and by_process[1]["signal"] == "SIGTERM"
  assert by_process[0]["stopped"] and by_process[0]["signal"] == "peer"
