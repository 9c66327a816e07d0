"""Test-suite settings: float32 on CPU, bounded hypothesis runs, a private cache directory."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Shipped configs cache their warm start under $XDG_CACHE_HOME/rlx: tests (and the runs they
# start in subprocesses) use a private one, never the user's.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="rlx-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "rlx",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.load_profile(os.environ.get("RLX_HYPOTHESIS_PROFILE", "rlx"))
