"""Mesh planning: the (data, fsdp, tensor, expert) sizes and remat policy a run should use on a slice.

A run's memory and speed on a slice follow from its shapes alone. An analytic model (below) gives the
bytes per device of parameters, gradients, AdamW moments and activations, and a step time from the
FLOPs and the collectives each mesh axis adds. It ranks every mesh that divides the slice and the
run's shapes; the best few whose estimate fits are then compiled ahead of time (`preflight`) and the
first whose compiled memory fits is chosen. The model prunes; the compiler decides.

A run whose config sets any mesh size other than the default (pure data parallel) pins its mesh: the
planner only checks it. A slice is a Cloud TPU type (v5p-512, v4-32, v5e-16), a topology
(v5p:8x8x8), or local devices (local, local:N; GPUs count their own memory).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import pathlib
from collections.abc import Callable

from mixlaws import accelerators, budget, config, counting
from mixlaws.config import Config, MeshConfig

# Chip-to-chip bandwidth per chip, bytes/s, one direction (Cloud TPU system architecture pages: ICI
# 2400 Gbps on v4, 1600 on v5e, 4800 on v5p, 3584 on v6e; NVLink 4: 900 GB/s both ways on H100/H200).
LINK_BYTES_PER_S = {"v4": 300e9, "v5e": 200e9, "v5p": 600e9, "v6e": 448e9, "H100": 450e9, "H200": 450e9}
HEADROOM = 0.9  # plan to at most this fraction of device memory (the compiler adds what the model misses)
MAX_TENSOR = 8  # tensor parallelism beyond 8 chips costs more in all-reduces than it saves
REMATS = ("none", "block")


@dataclasses.dataclass(frozen=True)
class Slice:
  """Where a run goes: how many devices, their memory, speed and links."""

  name: str  # as the user wrote it
  n_devices: int
  memory_bytes: float  # per device
  peak_flops: float  # per device
  link_bytes_per_s: float
  topology: str | None  # jax.experimental.topologies name; None → this machine's devices
  tpu: accelerators.TpuSlice | None = None  # the Cloud TPU slice type, when a TPU

  @property
  def label(self) -> str:
    return self.tpu.accelerator_type if self.tpu else self.name


def _tpu_slice(tpu: accelerators.TpuSlice, name: str) -> Slice:
  acc = accelerators.ACCELERATORS[tpu.family.accelerator]
  link = LINK_BYTES_PER_S[acc.name]
  return Slice(name, tpu.chips, acc.memory_bytes, acc.peak_flops, link, tpu.topology_name, tpu)


def parse_slice(text: str, local_devices: list | None = None) -> Slice:
  """A slice from v5p-512 (Cloud TPU type), v5p:8x8x8 (topology), local or local:N; one-line errors."""
  if text == "local" or text.startswith("local:"):
    from mixlaws import preflight

    topology, n = preflight.parse_target(text)
    devices, _, memory = preflight.target_devices(None, n, local_devices)
    acc = accelerators.for_device_kind(devices[0].device_kind)
    peak = acc.peak_flops if acc else 1e11  # a CPU: only the ranking uses it
    link = LINK_BYTES_PER_S.get(acc.name, 50e9) if acc else 50e9
    return Slice(text, len(devices), memory, peak, link, None)
  if ":" in text:
    acc = accelerators.for_topology(text)
    try:
      chips = math.prod(int(d) for d in text.split(":", 1)[1].split("x"))
    except ValueError:
      raise ValueError(f"topology: cannot read the chip grid of {text!r}; expected e.g. v5p:4x4x4") from None
    family = accelerators.TPU_FAMILIES[acc.name]
    tpu = accelerators.TpuSlice(family, chips) if chips in family.sizes else None
    return Slice(text, chips, acc.memory_bytes, acc.peak_flops, LINK_BYTES_PER_S[acc.name], text, tpu)
  return _tpu_slice(accelerators.tpu_slice(text), text)


# ------------------------------------------------------------------------------------------------
# The analytic model


@dataclasses.dataclass(frozen=True)
class Layout:
  """Mesh sizes and the remat policy: one candidate."""

  data: int
  fsdp: int
  tensor: int
  expert: int
  remat: str

  def __str__(self) -> str:
    parts = [f"{a}{getattr(self, a)}" for a in ("data", "fsdp", "tensor", "expert") if getattr(self, a) > 1]
    return "×".join(parts or ["data1"]) + ("" if self.remat == "none" else f" remat={self.remat}")

  def apply(self, cfg: Config) -> Config:
    mesh = dataclasses.replace(cfg.mesh, data=self.data, fsdp=self.fsdp, tensor=self.tensor, expert=self.expert)
    return dataclasses.replace(cfg, mesh=mesh, model=dataclasses.replace(cfg.model, remat=self.remat))


def _bytes(dtype: str) -> int:
  return 2 if dtype == "bfloat16" else 4


def _largest_batch(cfg: Config) -> int:
  return max(seg.batch_size for seg in budget.segments(cfg.train, cfg.model.seq_len))


def _param_split(cfg: Config, tensor: int) -> tuple[float, float]:
  """(dense parameters with the padded vocabulary, routed-expert parameters)."""
  shape = counting.Shape.from_config(cfg)
  p = counting.param_counts(shape)
  n_moe = shape.n_moe_layers
  expert = shape.ffn_matrices * shape.d_model * shape.d_ff / shape.granularity
  routed = n_moe * shape.n_experts * expert
  vocab_pad = (-(-cfg.model.vocab_size // (128 * tensor)) * 128 * tensor) - cfg.model.vocab_size
  padding = vocab_pad * cfg.model.d_model * (1 if cfg.model.tied_embeddings else 2)
  return p.total - routed + padding, routed


def estimate_bytes(cfg: Config, lay: Layout) -> float:
  """Bytes per device: parameters, gradients and two AdamW moments, sharded; activations kept for backward."""
  m, moe = cfg.model, cfg.moe
  dense, routed = _param_split(cfg, lay.tensor)
  pb, cb = _bytes(m.param_dtype), _bytes(m.compute_dtype)
  state = 4 * pb * (dense / (lay.fsdp * lay.tensor) + routed / (lay.expert * lay.fsdp * lay.tensor))
  tokens = _largest_batch(cfg) * m.seq_len / (lay.data * lay.fsdp * lay.expert)
  d, a, heads, t = m.d_model, m.n_heads * m.head_dim, m.n_heads, m.seq_len
  ffn_matrices = 3 if m.activation == "swiglu" else 2
  attention = cb * (2 * d + 4 * a / lay.tensor) + 8 * heads / lay.tensor * t  # f32 logits and probabilities
  dense_ffn = cb * (d + ffn_matrices * m.d_ff / lay.tensor)
  if moe.is_moe:
    slots = max(moe.top_k, 1) * max(moe.capacity_factor, 1.0)
    moe_ffn = cb * (d + slots * (2 * d + ffn_matrices * m.d_ff / moe.granularity / lay.tensor)) + 16 * moe.n_experts
  else:
    moe_ffn = dense_ffn
  n_moe = counting.Shape.from_config(cfg).n_moe_layers
  per_layer = [attention + moe_ffn] * int(n_moe) + [attention + dense_ffn] * int(m.n_layers - n_moe)
  if lay.remat == "block":
    activations = tokens * (cb * d * m.n_layers + 2 * max(per_layer))
  else:
    activations = tokens * sum(per_layer)
  padded_vocab = -(-m.vocab_size // (128 * lay.tensor)) * 128 * lay.tensor
  logits = 3 * 4 * tokens * padded_vocab / lay.tensor
  return state + activations + logits


def estimate_seconds(cfg: Config, lay: Layout, where: Slice) -> float:
  """Step time: FLOPs at peak plus each axis's collectives at link bandwidth, not overlapped."""
  m, moe = cfg.model, cfg.moe
  tokens_global = _largest_batch(cfg) * m.seq_len
  flops = counting.run_counts(cfg).conventions["chinchilla"].flops_per_token * tokens_global
  flops *= 4 / 3 if lay.remat == "block" else 1  # the forward pass runs twice
  compute = flops / (where.n_devices * where.peak_flops)
  dense, routed = _param_split(cfg, lay.tensor)
  cb = _bytes(m.compute_dtype)
  tokens = tokens_global / (lay.data * lay.fsdp * lay.expert)
  ring = lambda n: (n - 1) / n  # noqa: E731 — the fraction of a ring collective's data each device moves
  moved = 3 * cb * (dense / lay.tensor + routed / (lay.expert * lay.tensor)) * ring(lay.fsdp)  # gather ×2, scatter
  moved += 2 * 4 * (dense / (lay.fsdp * lay.tensor) + routed / (lay.expert * lay.fsdp * lay.tensor)) * ring(lay.data)
  moved += m.n_layers * 4 * 2 * tokens * m.d_model * cb * ring(lay.tensor)  # two all-reduces per block, ×2 backward
  if moe.is_moe:
    n_moe = counting.Shape.from_config(cfg).n_moe_layers
    slots = max(moe.top_k, 1) * max(moe.capacity_factor, 1.0)
    moved += n_moe * 4 * tokens * slots * m.d_model * cb * ring(lay.expert)  # dispatch and combine, ×2 backward
  return compute + moved / where.link_bytes_per_s


def _divisors(n: int) -> list[int]:
  return [k for k in range(1, n + 1) if n % k == 0]


def candidates(cfg: Config, n_devices: int) -> list[Layout]:
  """Every layout whose sizes divide the slice, the batch, the heads, the FFN and the experts."""
  m, moe = cfg.model, cfg.moe
  batch = math.gcd(*(seg.batch_size for seg in budget.segments(cfg.train, cfg.model.seq_len)))  # every ramp-up stage
  out = []
  for expert in _divisors(n_devices):
    if expert > 1 and (not moe.is_moe or moe.n_experts % expert):
      continue
    for tensor in _divisors(n_devices // expert):
      expert_width = m.d_ff // max(moe.granularity, 1)
      if tensor > MAX_TENSOR or m.n_heads % tensor or m.d_ff % tensor or expert_width % tensor:
        continue
      for fsdp in _divisors(n_devices // (expert * tensor)):
        data = n_devices // (expert * tensor * fsdp)
        if batch % (data * fsdp * expert) or m.d_model % fsdp:
          continue
        out.extend(Layout(data, fsdp, tensor, expert, remat) for remat in REMATS)
  return out


def is_pinned(mesh: MeshConfig) -> bool:
  """A mesh other than the default (all devices on `data`) was chosen by the study: keep it."""
  return (mesh.data, mesh.fsdp, mesh.tensor, mesh.expert) != (-1, 1, 1, 1)


# ------------------------------------------------------------------------------------------------
# Planning


@dataclasses.dataclass(frozen=True)
class Plan:
  """The layout chosen for one run on one slice, and how it was checked."""

  slice: str
  layout: Layout
  estimate_bytes: float
  estimate_seconds: float
  pinned: bool
  compiled: object | None  # preflight.Verdict of the AOT compile, when one ran
  fits: bool
  memory_bytes: float  # per device, of the slice
  smallest_fitting: str = ""  # when nothing fits: the smallest slice type of the family that would (estimated)

  @property
  def bytes_per_device(self) -> float:
    return self.compiled.bytes_per_device if self.compiled is not None else self.estimate_bytes


def _layout_of(cfg: Config, n_devices: int) -> Layout:
  from mixlaws.config import mesh_shape

  data, fsdp, tensor, expert = mesh_shape(cfg.mesh, n_devices)  # one line naming the field if it does not fit
  return Layout(data, fsdp, tensor, expert, cfg.model.remat)


def rank(cfg: Config, where: Slice) -> list[tuple[Layout, float, float]]:
  """(layout, bytes, seconds) of every candidate, fitting ones (by estimate) first, each group fastest first."""
  scored = []
  for lay in candidates(cfg, where.n_devices):
    need = estimate_bytes(cfg, lay)
    scored.append((lay, need, estimate_seconds(cfg, lay, where)))
  limit = HEADROOM * where.memory_bytes
  return sorted(scored, key=lambda s: (s[1] > limit, s[2] if s[1] <= limit else s[1]))


def plan_run(
  cfg: Config,
  where: Slice,
  compile_fn: Callable[[Config], object] | None = None,
  max_compiles: int = 2,
) -> Plan:
  """The layout for `cfg` on `where`. compile_fn(cfg) → a preflight Verdict; None → estimate only."""
  if is_pinned(cfg.mesh):
    lay = _layout_of(cfg, where.n_devices)
    verdict = compile_fn(cfg) if compile_fn else None
    need = estimate_bytes(cfg, lay)
    fits = verdict.fits if verdict is not None else need <= where.memory_bytes
    correction = verdict.bytes_per_device / need if verdict is not None else 1.0
    return Plan(where.label, lay, need, estimate_seconds(cfg, lay, where), True, verdict, fits, where.memory_bytes,
                "" if fits else smallest_fitting(cfg, where, correction))  # fmt: skip
  ranked = rank(cfg, where)
  if not ranked:
    raise ValueError(f"mesh: no layout of {where.n_devices} devices divides the batch, heads and FFN of this run")
  limit = HEADROOM * where.memory_bytes
  tried = []
  for lay, need, seconds in ranked[: max(max_compiles, 1)] if compile_fn else ranked[:1]:
    if compile_fn is None:
      return Plan(where.label, lay, need, seconds, False, None, need <= limit, where.memory_bytes,
                  "" if need <= limit else smallest_fitting(cfg, where))  # fmt: skip
    verdict = compile_fn(lay.apply(cfg))
    tried.append((lay, need, seconds, verdict))
    if verdict.fits and verdict.bytes_per_device <= limit:
      return Plan(where.label, lay, need, seconds, False, verdict, True, where.memory_bytes)
  lay, need, seconds, verdict = min(tried, key=lambda t: t[3].bytes_per_device)
  correction = min(t[3].bytes_per_device / t[1] for t in tried)
  return Plan(where.label, lay, need, seconds, False, verdict, verdict.fits, where.memory_bytes,
              "" if verdict.fits else smallest_fitting(cfg, where, correction))  # fmt: skip


def smallest_fitting(cfg: Config, where: Slice, correction: float = 1.0) -> str:
  """The smallest slice type of the same TPU family whose best layout fits by estimate ("" if none or not a TPU).

  correction: compiled ÷ estimated bytes of a layout already compiled; estimates are scaled by it (never
  down), so a run the model underrates is not sent to a slice the compiler would refuse too.
  """
  if where.tpu is None:
    return ""
  correction = max(correction, 1.0)
  for chips in where.tpu.family.sizes:
    if chips <= where.n_devices:
      continue
    bigger = _tpu_slice(accelerators.TpuSlice(where.tpu.family, chips), "")
    ranked = rank(cfg, bigger)
    if ranked and correction * ranked[0][1] <= HEADROOM * bigger.memory_bytes:
      return bigger.label
  return ""


DECLARE_HEADROOM = 0.75  # a study's declared slice leaves room for what the estimate misses


def smallest_slice(family: str, headroom: float = DECLARE_HEADROOM) -> Callable[[Config], str]:
  """For `Study.slice`: a run's smallest slice type of a TPU family whose best layout fits by estimate.

  Memory depends on the batch and context as much as on the parameters (attention scores grow with
  both), so the slice follows the whole shape rather than a parameter count.
  """
  fam = accelerators.TPU_FAMILIES[accelerators.get(family).name]

  def pick(cfg: Config) -> str:
    for chips in fam.sizes:
      where = _tpu_slice(accelerators.TpuSlice(fam, chips), "")
      ranked = rank(cfg, where)
      if ranked and ranked[0][1] <= headroom * where.memory_bytes:
        return where.label
    raise ValueError(f"slice: no {family} slice fits this run (largest: {fam.sizes[-1]} chips)")

  return pick


def memory_key(cfg: Config) -> tuple:
  """What a run's memory depends on: model, MoE layer, mesh and the largest batch (not tokens or lr)."""
  return (cfg.model, cfg.moe, cfg.mesh, _largest_batch(cfg))


def plan_many(
  configs: list[Config], where: Slice, compile_fn: Callable[[Config], object] | None, max_compiles: int = 2
) -> list[Plan]:
  """A plan per config; each distinct shape is planned (and each layout compiled) once."""
  cache: dict[tuple, Plan] = {}
  compiled: dict[tuple, object] = {}

  def cached_compile(cfg: Config):
    key = memory_key(cfg)
    if key not in compiled:
      compiled[key] = compile_fn(cfg)
    return compiled[key]

  plans = []
  for cfg in configs:
    key = memory_key(cfg)
    if key not in cache:
      cache[key] = plan_run(cfg, where, cached_compile if compile_fn else None, max_compiles)
    plans.append(cache[key])
  return plans


def preflight_compiler(
  where: Slice, cache_dir: str | None = None, cached_only: bool = False
) -> Callable[[Config], object]:
  """compile_fn for `plan_run`: the AOT compile of the train step for the slice (TPU topology or local).

  A TPU topology's verdicts are kept on disk (cache_dir, default ~/.cache/mixlaws/preflight), keyed by
  the config, the topology, the JAX version and a digest of mixlaws' own sources, so a 56B shape is
  compiled once across `mixlaws plan` and `mixlaws bench preflight`, and again after any code change.
  cached_only: raise LookupError instead of compiling a shape that is not in the cache.
  """
  from mixlaws import preflight

  if not where.topology:
    return lambda cfg: preflight.preflight(cfg, n_devices=where.n_devices)
  directory = pathlib.Path(cache_dir or os.environ.get("MIXLAWS_PREFLIGHT_CACHE", "~/.cache/mixlaws/preflight"))
  directory = directory.expanduser()

  def compile_fn(cfg: Config):
    import jax

    key = hashlib.sha256(f"{config.config_hash(cfg)}|{where.topology}|{jax.__version__}|{_source_digest()}".encode())
    path = directory / f"{key.hexdigest()[:32]}.json"
    if path.exists():
      return preflight.Verdict(**json.loads(path.read_text()))
    if cached_only:
      raise LookupError(f"not compiled yet for {where.topology} (no cached verdict)")
    verdict = preflight.preflight(cfg, topology=where.topology)
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(verdict)))
    return verdict

  return compile_fn


# The modules the compiled train step is built from; a change to any of them invalidates cached verdicts.
COMPILED_SOURCES = ("models/*.py", "train.py", "sharding.py", "config.py", "optim.py", "budget.py", "preflight.py")


@functools.cache
def _source_digest() -> str:
  """sha256 over the sources of COMPILED_SOURCES: what a cached compile was made from."""
  root = pathlib.Path(__file__).parent
  digest = hashlib.sha256()
  for path in sorted({p for pattern in COMPILED_SOURCES for p in root.glob(pattern)}):
    digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
  return digest.hexdigest()


def row(plan: Plan) -> dict:
  """The plan's columns in `mixlaws plan --preflight`: mesh, GiB per device (arguments, temporaries, total)."""
  v = plan.compiled
  gib = 2**30
  return {
    "slice": plan.slice,
    "mesh": str(plan.layout) + (" (pinned)" if plan.pinned else ""),
    # a program the TPU compiler refuses reports only what its temporaries need: no argument size
    "args_gib": round(v.argument_bytes / gib, 2) if v is not None and v.argument_bytes else None,
    "temp_gib": round(v.temp_bytes / gib, 2) if v is not None else None,
    "memory_gib": round(plan.bytes_per_device / gib, 2),
    "hbm_gib": round(plan.memory_bytes / gib, 2),
    "fits": plan.fits,
    "smallest_fitting": plan.smallest_fitting,
  }


def plan_specs(specs: list, target: str, compile: bool = True, max_compiles: int = 2) -> list[Plan]:
  """A plan per RunSpec on `target`, or on each run's declared slice when target is "declared"."""
  if target != "declared":
    where = parse_slice(target)
    return plan_many([s.config for s in specs], where, preflight_compiler(where) if compile else None, max_compiles)
  undeclared = [s.run_id for s in specs if not s.slice]
  if undeclared:
    raise ValueError(f"--preflight: {undeclared[0]} declares no slice; name a target such as v5p-128 instead")
  from mixlaws import registry

  plans: dict[str, Plan] = {}
  for name, group in registry.group_by_slice(specs).items():
    where = parse_slice(name)
    found = plan_many([s.config for s in group], where, preflight_compiler(where) if compile else None, max_compiles)
    plans.update({s.run_id: p for s, p in zip(group, found, strict=True)})
  return [plans[s.run_id] for s in specs]
