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
