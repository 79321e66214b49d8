"""Every test process sees 8 fake CPU devices; set before JAX is imported anywhere."""

import os

os.environ["XLA_FLAGS"] = " ".join(
  filter(None, [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"])
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
