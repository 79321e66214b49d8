"""Pre-flight: compile a run's train step ahead of time for its target and check its memory.

For a TPU topology (e.g. `v5p:4x4x4`) the step is lowered and compiled with libtpu on this machine
(`jax.experimental.topologies`; no TPU needed), and XLA's memory analysis gives the bytes each
device needs. For a local device count the step is compiled for this machine's devices instead,
against host memory shared by them.
"""

from __future__ import annotations

import dataclasses
import os
import re

import jax
import jax.numpy as jnp

from mixlaws import accelerators, budget, optim, sharding, train
from mixlaws.config import Config

# libtpu takes a machine-wide lock file when it loads; compile-only use (no TPU attached) does not
# need it, and without this a second process (a parallel test, another pre-flight) fails to start.
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
DEFAULT_CHIPS_PER_HOST = (2, 2, 1)


@dataclasses.dataclass(frozen=True)
class Verdict:
  """Whether a run fits its target, with the numbers behind it."""

  target: str
  n_devices: int
  bytes_per_device: int
  limit_bytes: float
  fits: bool
  argument_bytes: int = 0  # parameters, optimizer state and batch (0 when the compiler refused the program)
  temp_bytes: int = 0  # activations and other temporaries

  @property
  def reason(self) -> str:
    need, have = self.bytes_per_device / 2**30, self.limit_bytes / 2**30
    verb = "fits" if self.fits else "does not fit"
    return f"{verb}: needs {need:.2f} GiB per device on {self.target}, which has {have:.2f} GiB per device"


def target_devices(topology: str | None, n_devices: int | None, local: list | None = None) -> tuple[list, str, float]:
  """(devices, description, memory per device) of a TPU topology or of n local devices (`local`: jax.devices())."""
  if topology:
    from jax.experimental import topologies

    acc = accelerators.for_topology(topology)
    try:
      shape = tuple(int(d) for d in topology.split(":", 1)[1].split("x"))
      shape += (1,) * (3 - len(shape))
      # a slice smaller than one host (e.g. v5e:1x1) needs host bounds no larger than itself
      bounds = tuple(min(d, b) for d, b in zip(shape, DEFAULT_CHIPS_PER_HOST))
      devices = topologies.get_topology_desc(topology, platform="tpu", chips_per_host_bounds=bounds).devices
    except Exception as e:  # libtpu missing or a malformed shape: one line, naming the topology
      raise ValueError(f"topology: cannot describe {topology!r} ({str(e).splitlines()[0]})") from None
    return list(devices), topology, acc.memory_bytes
  local = jax.devices() if local is None else local
  n = n_devices or len(local)
  if n > len(local):
    raise ValueError(f"devices: asked for {n} but this machine has {len(local)}")
  return local[:n], f"{n} local {local[0].platform} devices", device_memory(local[0], n)


def device_memory(device, n_devices: int) -> float:
  """Memory one device may use: an accelerator's own (what its allocator reports, else the table's HBM);
  a CPU device shares the host's memory with the other n_devices - 1."""
  if device.platform != "cpu":
    try:
      stats = device.memory_stats() or {}
    except Exception:  # backends without allocator statistics
      stats = {}
    if stats.get("bytes_limit"):
      return float(stats["bytes_limit"])
    acc = accelerators.for_device_kind(device.device_kind)
    if acc is not None:
      return acc.memory_bytes
    raise ValueError(f"devices: cannot tell the memory of a {device.device_kind!r}; add it to accelerators.py")
  host_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  return host_memory / n_devices


def compiled_train_step(cfg: Config, devices: list):
  """The train step lowered and compiled for `devices` at the run's largest batch."""
  mesh = sharding.make_mesh(cfg.mesh, devices)
  tx = optim.optimizer(cfg)
  abstract = jax.eval_shape(train.init_fn(cfg, tx))
  shardings = train.state_shardings(abstract, mesh, cfg.mesh.param_rules)
  batch_sharding = train.batch_sharding(cfg, mesh)
  train.check_batch_sizes(cfg, batch_sharding)
  batch_size = max(seg.batch_size for seg in budget.segments(cfg.train, cfg.model.seq_len))
  batch = jax.ShapeDtypeStruct((batch_size, cfg.model.seq_len + 1), jnp.int32, sharding=batch_sharding)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  # pad_id only selects which targets count; any id gives the same program, and needs no tokenizer file.
  step = jax.jit(train.make_train_step(cfg, train.graphdef(cfg), tx, mesh, pad_id=0), donate_argnums=0,
                 in_shardings=(shardings, batch_sharding, replicated), out_shardings=(shardings, None))  # fmt: skip
  lr = jax.ShapeDtypeStruct((), jnp.float32, sharding=replicated)
  return step.lower(train.abstract_with_shardings(abstract, shardings), batch, lr).compile()


def preflight(cfg: Config, topology: str | None = None, n_devices: int | None = None) -> Verdict:
  """Compiles the train step for the target and compares its memory per device with the device's."""
  devices, target, limit = target_devices(topology, n_devices)
  try:
    memory = compiled_train_step(cfg, devices).memory_analysis()
  except jax.errors.JaxRuntimeError as e:
    # The TPU compiler refuses programs that cannot fit; it names what the temporaries alone need.
    found = _EXHAUSTED.search(str(e))
    if not found:
      raise
    needed = float(found.group(1)) * _UNITS[found.group(2)]
    return Verdict(target, len(devices), int(needed), float(limit), False, 0, int(needed))
  needed = (memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
            - memory.alias_size_in_bytes + memory.generated_code_size_in_bytes)  # fmt: skip
  return Verdict(target, len(devices), int(needed), float(limit), needed <= limit,
                 int(memory.argument_size_in_bytes), int(memory.temp_size_in_bytes))  # fmt: skip


_EXHAUSTED = re.compile(r"RESOURCE_EXHAUSTED.*?\(([\d.]+)([KMGT])\) exceeds", re.S)
_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def memory_key(cfg: Config) -> tuple:
  """What a run's memory depends on: model, MoE layer, mesh and the largest batch (not tokens or lr)."""
  batch = max(seg.batch_size for seg in budget.segments(cfg.train, cfg.model.seq_len))
  return (cfg.model, cfg.moe, cfg.mesh, batch)


def preflight_many(configs: list[Config], target: str) -> list[Verdict]:
  """A verdict per config, compiling once per distinct memory_key. target: a TPU topology or local[:N]."""
  topology, n_devices = parse_target(target)
  cache: dict[tuple, Verdict] = {}
  verdicts = []
  for cfg in configs:
    key = memory_key(cfg)
    if key not in cache:
      cache[key] = preflight(cfg, topology=topology, n_devices=n_devices)
    verdicts.append(cache[key])
  return verdicts


def parse_target(target: str) -> tuple[str | None, int | None]:
  """'v5p:4x4x4' → (topology, None); 'local' → (None, None) for all local devices; 'local:8' → (None, 8)."""
  if target == "local":
    return None, None
  if target.startswith("local:"):
    count = target.split(":", 1)[1]
    if not count.isdigit() or int(count) < 1:
      raise ValueError(f"preflight: expected local:N with N >= 1, got {target!r}")
    return None, int(count)
  return target, None
