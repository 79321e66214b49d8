"""Every test process sees 8 fake CPU devices and one compilation cache; set before JAX is imported anywhere."""

import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = " ".join(
  filter(None, [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"])
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_configure(config):
  """One persistent compilation cache for the session: its xdist workers and the processes tests start
  inherit it, so a program that several tests build (the same tiny model, the same eval step) compiles
  once. Set in the controller before the workers start; every program is cached, however small.
  """
  if "JAX_COMPILATION_CACHE_DIR" in os.environ or hasattr(config, "workerinput"):
    return
  config._mixlaws_cache = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="mixlaws-jax-cache-")
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


def pytest_unconfigure(config):
  if hasattr(config, "workerinput") or not getattr(config, "_mixlaws_cache", None):
    return
  shutil.rmtree(config._mixlaws_cache, ignore_errors=True)
