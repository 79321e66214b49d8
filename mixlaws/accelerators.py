"""Accelerator facts used for MFU, chip-hours and pre-flight memory checks.

Peaks are dense bf16 matmul FLOP/s per chip from the vendors' public spec pages (Google Cloud TPU
system architecture pages; NVIDIA H100/H200 SXM datasheets, dense, without sparsity). Memory is
high-bandwidth memory per chip. A CPU has no spec: its peak is measured in-process.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Accelerator:
  name: str
  peak_flops: float  # dense bf16 FLOP/s per chip
  memory_bytes: float  # HBM per chip
  device_kinds: tuple[str, ...]  # jax Device.device_kind strings that identify it
  topology_prefix: str = ""  # prefix of jax.experimental.topologies names, e.g. "v5e:2x2"


GIB = 2**30
ACCELERATORS = {
  a.name: a
  for a in (
    Accelerator("v4", 275e12, 32 * GIB, ("TPU v4",), "v4"),
    Accelerator("v5e", 197e12, 16 * GIB, ("TPU v5 lite", "TPU v5e"), "v5e"),
    Accelerator("v5p", 459e12, 95 * GIB, ("TPU v5", "TPU v5p"), "v5p"),
    Accelerator("v6e", 918e12, 32 * GIB, ("TPU v6 lite", "TPU v6e"), "v6e"),
    Accelerator("H100", 989e12, 80e9, ("NVIDIA H100 80GB HBM3", "NVIDIA H100"), ""),
    Accelerator("H200", 989e12, 141e9, ("NVIDIA H200",), ""),
  )
}


def get(name: str) -> Accelerator:
  """An accelerator by name (case-insensitive), with a one-line error for unknown names."""
  for key, acc in ACCELERATORS.items():
    if key.lower() == name.lower():
      return acc
  raise ValueError(f"accelerator: unknown {name!r}; expected one of {', '.join(ACCELERATORS)}")


def for_device_kind(device_kind: str) -> Accelerator | None:
  """The accelerator a jax device belongs to, or None (CPU, unknown GPU)."""
  for acc in ACCELERATORS.values():
    if any(device_kind.startswith(kind) for kind in acc.device_kinds):
      return acc
  return None


def for_topology(topology: str) -> Accelerator:
  """The accelerator of a topology name such as 'v5p:4x4x4'."""
  prefix = topology.split(":", 1)[0]
  for acc in ACCELERATORS.values():
    if acc.topology_prefix and acc.topology_prefix == prefix:
      return acc
  known = ", ".join(a.topology_prefix for a in ACCELERATORS.values() if a.topology_prefix)
  raise ValueError(f"topology: unknown accelerator in {topology!r}; expected one of {known} (e.g. v5e:2x2)")


# ------------------------------------------------------------------------------------------------
# TPU slice types as Cloud TPU names them (`gcloud … --accelerator-type`, `xpk … --tpu-type`).


@dataclasses.dataclass(frozen=True)
class TpuFamily:
  """How one TPU generation's slice types are named and laid out (Cloud TPU system architecture pages)."""

  accelerator: str  # key of ACCELERATORS
  type_prefix: str  # accelerator-type prefix: v5p-128, v5litepod-16, …
  cores_per_chip: int  # the type's number counts TensorCores (v4, v5p: 2 per chip) or chips (1)
  dims: int  # topology rank: 3-D torus (v4, v5p) or 2-D (v5e, v6e)
  single_host_chips: int  # the most chips one host holds; larger slices have 4 chips per host
  runtime_version: str  # default TPU VM software version
  sizes: tuple[int, ...]  # chips of the slice types offered


TPU_FAMILIES = {
  f.accelerator: f
  for f in (
    TpuFamily("v4", "v4", 2, 3, 4, "tpu-ubuntu2204-base", tuple(2**i for i in range(2, 12))),
    TpuFamily("v5e", "v5litepod", 1, 2, 8, "v2-alpha-tpuv5-lite", (1, 4, 8, 16, 32, 64, 128, 256)),
    TpuFamily("v5p", "v5p", 2, 3, 4, "v2-alpha-tpuv5", tuple(2**i for i in range(2, 13))),
    TpuFamily("v6e", "v6e", 1, 2, 8, "v2-alpha-tpuv6e", (1, 4, 8, 16, 32, 64, 128, 256)),
  )
}
CHIPS_PER_HOST = 4  # hosts of multi-host slices hold 4 chips in every generation above


@dataclasses.dataclass(frozen=True)
class TpuSlice:
  """One TPU slice type: chips, hosts and topology."""

  family: TpuFamily
  chips: int

  @property
  def accelerator_type(self) -> str:
    """The Cloud TPU name: v5p-128 (TensorCores), v5litepod-16 (chips)."""
    return f"{self.family.type_prefix}-{self.chips * self.family.cores_per_chip}"

  @property
  def hosts(self) -> int:
    return 1 if self.chips <= self.family.single_host_chips else self.chips // CHIPS_PER_HOST

  @property
  def chips_per_host(self) -> int:
    return self.chips // self.hosts

  @property
  def topology(self) -> str:
    """Chip grid, e.g. 4x4x4 for v5p-128: doubling dimensions in turn from the last, as Cloud TPU's
    default topologies grow (4 chips on a 3-D torus are one 2x2x1 host board)."""
    if self.family.dims == 3 and self.chips == 4:
      return "2x2x1"
    shape = [1] * self.family.dims
    for i in range(self.chips.bit_length() - 1):
      shape[-1 - i % self.family.dims] *= 2
    return "x".join(map(str, shape))

  @property
  def topology_name(self) -> str:
    """The jax.experimental.topologies name, e.g. v5p:4x4x4 (for `mixlaws preflight --topology`)."""
    return f"{ACCELERATORS[self.family.accelerator].topology_prefix}:{self.topology}"


def tpu_slice(accelerator_type: str) -> TpuSlice:
  """A slice type from its Cloud TPU name (v4-8, v5p-128, v5litepod-16 or v5e-16, v6e-256)."""
  prefix, _, number = accelerator_type.lower().rpartition("-")
  family = next((f for f in TPU_FAMILIES.values() if prefix in (f.type_prefix, f.accelerator)), None)
  if family is None or not number.isdigit():
    known = ", ".join(f"{f.type_prefix}-N" for f in TPU_FAMILIES.values())
    raise ValueError(f"accelerator type: unknown {accelerator_type!r}; expected one of {known}")
  chips, rest = divmod(int(number), family.cores_per_chip)
  if rest or chips not in family.sizes:
    offered = ", ".join(str(c * family.cores_per_chip) for c in family.sizes)
    raise ValueError(
      f"accelerator type: {accelerator_type!r}: no {family.type_prefix} slice of that size; sizes: {offered}"
    )
  return TpuSlice(family, chips)
