"""glibc's malloc set up for XLA:CPU, so that freed buffers stay in the process and the next step reuses them.

XLA:CPU allocates each execution's temporary buffers afresh: one slab of over a gigabyte for a train
step of the ~20M-parameter MoE of `mixlaws bench model`. glibc serves allocations that large with
mmap and hands them back with munmap, so every step page-faults its whole working set in again; we
measured 20-40% of such a step's CPU time in the kernel (1.8 GB of page faults per step with E = 8,
1.1 GB dense), and the share swings with the host's load. With one arena, no mmap and no trimming,
glibc keeps freed slabs in its heap and the next step takes them back without a single page fault.
The cost: the process keeps its peak heap until it exits, which a training process does anyway.

These are glibc tunables, read only when a process starts, so the `mixlaws` command re-executes itself
once with them in the environment (`reexec_with_tuned_malloc`): same process id, same arguments, and
child processes inherit them. A GLIBC_TUNABLES that already sets any glibc.malloc tunable is left as it
is, and MIXLAWS_MALLOC=system turns the whole thing off. Without glibc (macOS, musl) nothing changes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

TUNABLES = (
  "glibc.malloc.arena_max=1",  # XLA's threads allocate from the main heap, whose freed chunks get reused
  "glibc.malloc.mmap_max=0",  # large blocks come from the heap, not from fresh (page-faulting) mappings
  f"glibc.malloc.trim_threshold={64 * 2**30}",  # freed memory is not given back to the kernel
)


def _has_glibc() -> bool:
  try:
    return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
  except (AttributeError, ValueError, OSError):  # no confstr (Windows) or no such name (macOS, musl)
    return False


def tuned_environ(environ: Mapping[str, str]) -> dict[str, str] | None:
  """`environ` with the tunables added, or None when malloc should be left alone (see the module doc)."""
  current = environ.get("GLIBC_TUNABLES", "")
  if environ.get("MIXLAWS_MALLOC") == "system" or "glibc.malloc." in current or not _has_glibc():
    return None
  return {**environ, "GLIBC_TUNABLES": ":".join(filter(None, (current, *TUNABLES)))}


def describe(environ: Mapping[str, str] = os.environ) -> str:
  """How this process's malloc is set up, for benchmark reports."""
  current = environ.get("GLIBC_TUNABLES", "")
  if all(tunable in current for tunable in TUNABLES):
    return "glibc tuned for XLA:CPU (mixlaws.allocator)"
  if "glibc.malloc." in current:
    return f"glibc with GLIBC_TUNABLES={current}"
  return "glibc defaults" if _has_glibc() else "system"


def reexec_with_tuned_malloc() -> None:
  """Replaces this process with itself, the tunables set; returns only when nothing needs to change."""
  environ = tuned_environ(os.environ)
  if environ is not None:
    os.execve(sys.executable, sys.orig_argv, environ)
