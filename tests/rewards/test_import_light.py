"""Reward workers import ``rlx.rewards`` in fresh processes: that import must not pull in jax."""

import subprocess
import sys


def test_importing_rlx_rewards_does_not_import_jax():
  code = ("import sys, rlx.rewards; from rlx.rewards import get_reward; get_reward('math_answer'); "
          "print('jax' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False", out.stderr
