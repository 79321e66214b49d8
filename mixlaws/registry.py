"""Studies → RunSpecs: sweeps, the papers' grid helpers, derived fields, run ids, filters and costs.

A study is a file in `experiments/` (installed as `mixlaws.experiments`) whose `get_study(variant)`
returns a `Study`: a base config (a ConfigDict from `config.base_config()`, edited) and a sweep, a
list of points. A point maps dotted config fields to values; a value may instead be a *derived*
field, a function of the config resolved with every value before it (a learning-rate rule, tokens
from a tokens-per-parameter ratio). `product`, `zip_fields` and `chain` build sweeps from smaller
ones, as big_vision's `sweep()` and Marin's isoFLOP helpers do. Nothing runs at import: a study is
expanded only when asked for, into RunSpecs, each a resolved `Config` with every count under every
convention and a content-addressed run id (DESIGN.md):

    <study>-<size tag>-<first 8 hex of config.config_hash(config)>
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import itertools
import math
import operator
import pathlib
import pkgutil
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import ml_collections

from mixlaws import budget, counting
from mixlaws import config as config_lib
from mixlaws.config import Config

Point = dict[str, Any]  # dotted config field → value, or → Derived
Sweep = list[Point]
Derived = Callable[[Config], Any]  # a field computed from the config resolved with the values before it

# --------------------------------------------------------------------------------------------
# Sweeps


def axis(field: str, values: Iterable[Any]) -> Sweep:
  """One point per value of one field."""
  return [{field: v} for v in values]


def product(*sweeps: Sweep) -> Sweep:
  """Every combination of one point from each sweep; later sweeps vary fastest."""
  out = []
  for combo in itertools.product(*sweeps):
    point: Point = {}
    for part in combo:
      point.update(part)
    out.append(point)
  return out


def zip_fields(fields: Mapping[str, Sequence[Any]]) -> Sweep:
  """Points that take the i-th value of every field together; the value lists must match in length."""
  lengths = {name: len(values) for name, values in fields.items()}
  if len(set(lengths.values())) > 1:
    raise ValueError(f"zip_fields: value lists differ in length: {lengths}")
  names = list(fields)
  return [dict(zip(names, values)) for values in zip(*fields.values())]


def chain(*sweeps: Sweep) -> Sweep:
  """The points of each sweep in turn (a union of sub-grids)."""
  return [dict(p) for sweep in sweeps for p in sweep]


# --------------------------------------------------------------------------------------------
# Grid helpers: shapes, tokens, learning rate, batch ramp-up, isoFLOP grids


def size_rule(n_blocks: Iterable[int], width_per_block: int = 64, head_width: int = 64) -> Sweep:
  """Shapes by the papers' rule d_model = 64·n_blocks, n_heads = d_model/64 (PAPERS.md §1.4, §2.5).

  Tiny variants keep the rule's form with narrower blocks and heads (e.g. 16 and 16).
  """
  out = []
  for n in n_blocks:
    d_model, _ = counting.shape_from_blocks(n, width_per_block)
    out.append({"model.d_model": d_model, "model.n_layers": n, "model.n_heads": d_model // head_width})
  return out


def sizes(table: Mapping[str, Point], names: Iterable[str] | None = None) -> Sweep:
  """Rows of a named size table (name → fields), all or the named ones in order."""
  names = list(table) if names is None else list(names)
  unknown = [n for n in names if n not in table]
  if unknown:
    raise ValueError(f"sizes: unknown size {unknown[0]!r}; expected one of {', '.join(table)}")
  return [dict(table[n]) for n in names]


def _count(cfg: Config, convention: str) -> counting.ConventionCount:
  return counting.convention_count(counting.Shape.from_config(cfg), convention)


def tokens_per_param(ratio: float, convention: str = "ludziejewski2025") -> Derived:
  """train.tokens = ratio · active parameters under `convention` (e.g. Chinchilla's 20)."""
  return lambda cfg: round(ratio * _count(cfg, convention).active_params)


def tokens_for_flops(flops: float, convention: str = "chinchilla") -> Derived:
  """train.tokens that spend a training-FLOPs budget under `convention`."""
  return lambda cfg: round(flops / _count(cfg, convention).flops_per_token)


@dataclasses.dataclass(frozen=True)
class IsoflopRecipe:
  """What an isoFLOP grid spends each budget on: candidate shapes over a base config."""

  base: ml_collections.ConfigDict  # the study's base config
  shapes: Sweep  # candidate models (any fields: shape, experts, router, …)
  convention: str = "chinchilla"  # FLOPs per token and N for the tokens-per-parameter bounds
  min_tokens_per_param: float = 0.0  # drop a (budget, shape) pair with fewer tokens per active parameter
  max_tokens_per_param: float = math.inf  # … or with more


def isoflop_grid(budgets: Iterable[float], recipe: IsoflopRecipe) -> Sweep:
  """For each budget, each candidate shape with train.tokens spending it (Marin's isoFLOP sweeps)."""
  out = []
  for flops in budgets:
    for shape in recipe.shapes:
      try:
        cfg = resolve_point(recipe.base, shape)
      except ValueError as e:
        raise ValueError(f"isoflop_grid: shape ({_describe(shape)}): {e}") from None
      count = _count(cfg, recipe.convention)
      tokens = round(flops / count.flops_per_token)
      if recipe.min_tokens_per_param <= tokens / count.active_params <= recipe.max_tokens_per_param:
        out.append({**shape, "train.tokens": tokens, "train.steps": 0})
  return out


# Ludziejewski et al. 2025, Eq. 8, with the constants of llm-random's `calculate_auto_lr` (PAPERS.md §2.6).
EQ8_INTERCEPT = 8.391640956234012
EQ8_PARAMS_SLOPE = -0.8122
EQ8_EXPERTS_SLOPE = -0.25000000000000533


def eq8_lr(params: float, experts: float) -> float:
  """Ludziejewski et al. 2025, Eq. 8: LR = exp(8.39 − 0.81·ln N − 0.25·ln E)."""
  return math.exp(EQ8_INTERCEPT + EQ8_PARAMS_SLOPE * math.log(params) + EQ8_EXPERTS_SLOPE * math.log(experts))


def eq8_params(cfg: Config, with_embeddings: bool = True) -> float:
  """The N of Eq. 8 as llm-random counts it (PAPERS.md §7.5): attention + active FFN, and with
  embeddings the input table vocab·d + seq_len·d (present even with RoPE) and the head vocab·d."""
  p = counting.param_counts(counting.Shape.from_config(cfg))
  n = p.attention + p.ffn_active
  if with_embeddings:
    d = cfg.model.d_model
    n += 2 * cfg.model.vocab_size * d + cfg.model.seq_len * d
  return n


def lr_eq8(with_embeddings: bool = True) -> Derived:
  """train.lr by Eq. 8; the authors' code counted embeddings, so the default does (PAPERS.md §2.6)."""
  # E of Ludziejewski et al. is the expert count at G = 1; expansion_rate is that count there.
  return lambda cfg: eq8_lr(eq8_params(cfg, with_embeddings), cfg.moe.expansion_rate)


def batch_rampup(stages: Iterable[tuple[int, float]]) -> str:
  """train.batch_rampup from (sequences, until this many tokens) stages, e.g. [(128, 5e8), (256, 1e9)]."""
  return ",".join(f"{int(seqs)}:{int(tokens)}" for seqs, tokens in stages)


# --------------------------------------------------------------------------------------------
# Studies and run specs


def group_by_slice(specs: Sequence[RunSpec], default: str = "") -> dict[str, list[RunSpec]]:
  """Runs grouped by their declared slice (undeclared ones under `default`), so a launcher can give
  each group its own slices and small runs do not take a large slice."""
  groups: dict[str, list[RunSpec]] = {}
  for spec in specs:
    groups.setdefault(spec.slice or default, []).append(spec)
  return groups


@dataclasses.dataclass(frozen=True)
class Study:
  """A base config and a sweep over it; `derived` fields are computed for every point after its own."""

  name: str  # the file's name in experiments/
  description: str
  base: ml_collections.ConfigDict
  sweep: Sweep
  derived: Mapping[str, Derived] = dataclasses.field(default_factory=dict)
  variant: str | None = None  # set by `load`
  evaluation: EvalPlan | None = None  # downstream evaluation planned for every run (its cost joins the plan)
  # > 0: the budgets of one shape train as warmup-stable-decay cooldown branches of one trunk, each
  # decaying linearly to 0 over this fraction of its tokens (Hägele et al. 2024; see `branch_runs`).
  cooldown: float = 0.0
  # The slice type each run trains on (v5p-128, v4-32, local, …), from its resolved config; None → the
  # launcher's. Not part of the run id: where a run trains does not change what it computes.
  slice: Callable[[Config], str] | None = None

  @property
  def label(self) -> str:
    """The study name runs are filed under: `name`, or `name-variant` so variants never mix."""
    return self.name if self.variant is None else f"{self.name}-{self.variant}"


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One run of a study: resolved config, every count, and its content-addressed id."""

  study: str
  run_id: str
  config: Config
  counts: counting.RunCounts
  lineage: Lineage | None = None  # a WSD trunk or branch; None for a run trained from scratch to its end
  slice: str = ""  # the slice type the study declares for this run; "" → none declared

  def record(self) -> dict[str, Any]:
    """config.json of the run dir (mixlaws/rundir.py): study, run id, resolved config, counts (and lineage)."""
    out = {
      "study": self.study,
      "run_id": self.run_id,
      "config": self.config.to_dict(),
      "counts": self.counts.to_dict(),
    }
    if self.lineage is not None:
      out["lineage"] = self.lineage.to_dict()
    return out

  @property
  def is_point(self) -> bool:
    """Whether the run's final loss is a fitted (N, D) point: every run but a trunk (its loss precedes any cooldown)."""
    return self.lineage is None or self.lineage.role == "branch"

  def trained_flops(self, convention: str = "chinchilla") -> float:
    """Training FLOPs this run itself spends: a branch starts at its fork, so only its cooldown counts."""
    skipped = self.lineage.fork_tokens[0] if self.lineage is not None and self.lineage.role == "branch" else 0
    return self.counts.conventions[convention].flops_per_token * (self.counts.tokens - skipped)

  def row(self, convention: str = "chinchilla") -> dict[str, Any]:
    """The plan's columns; `flops` counts training FLOPs under `convention`."""
    m, moe, p = self.config.model, self.config.moe, self.counts.params
    return {
      "run_id": self.run_id,
      "d_model": m.d_model,
      "n_layers": m.n_layers,
      "E": moe.expansion_rate,
      "G": moe.granularity,
      "top_k": moe.top_k,
      "router": moe.router if moe.is_moe else "dense",
      "params_total": int(p.total),
      "params_active": round(p.active),
      "params_non_embedding": int(p.non_embedding),
      "tokens": self.counts.tokens,
      "steps": self.counts.steps,
      "flops": self.counts.flops(convention),
    }

  def fields(self) -> dict[str, Any]:
    """Everything a filter may name: plan columns, counting columns and dotted config fields."""
    out = {f"{s}.{k}": v for s, values in self.config.to_dict().items() for k, v in values.items()}
    out.update(self.counts.to_dict())
    out.update(self.row())
    return out


def _set(values: dict[str, dict[str, Any]], dotted: str, value: Any) -> None:
  section, _, name = dotted.partition(".")
  if name not in values.get(section, {}):
    known = [f"{s}.{f}" for s, fields in values.items() for f in fields]
    close = difflib.get_close_matches(dotted, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(f"{dotted}: unknown config field{hint}")
  current = values[section][name]
  if isinstance(value, float) and value.is_integer() and isinstance(current, int) and not isinstance(current, bool):
    value = int(value)  # 16e9 tokens in a study file
  values[section][name] = value


def resolve_point(
  base: ml_collections.ConfigDict,
  point: Point,
  derived: Mapping[str, Derived] | None = None,
  n_devices: int | None = None,
) -> Config:
  """The base with a point's fixed values, then its derived values, then `derived`, resolving after each.

  A derived field sees the config resolved (and validated) with every value set before it.
  """
  values = base.to_dict()
  rules = []
  for dotted, value in point.items():
    if callable(value):
      rules.append((dotted, value))
    else:
      _set(values, dotted, value)
  rules += list((derived or {}).items())
  cfg = config_lib.resolve(values)
  for dotted, rule in rules:
    _set(values, dotted, rule(cfg))
    cfg = config_lib.resolve(values)
  if n_devices is not None:
    config_lib.validate(cfg, n_devices=n_devices)
  return cfg


ROUTER_CODES = {"token_choice": "tc", "switch": "sw", "expert_choice": "ec", "mixture_of_tokens": "mot"}


def short_number(value: float) -> str:
  """Three significant figures with a K/M/B/T suffix, no spaces: 16000262144 → 16B, 5e8 → 500M."""
  value = float(f"{value:.3g}")  # round first, so 999_999 becomes 1M rather than 1e+03K
  for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
    if abs(value) >= scale:
      return f"{value / scale:.3g}{suffix}"
  return f"{value:.3g}"


def size_tag(cfg: Config, tokens: int) -> str:
  """Readable part of a run id: width and depth, router and E/G/top-k for MoE, tokens."""
  m, moe = cfg.model, cfg.moe
  parts = [f"d{m.d_model}l{m.n_layers}"]
  if moe.is_moe:
    tag = f"{ROUTER_CODES.get(moe.router, moe.router)}{moe.expansion_rate}"
    tag += f"g{moe.granularity}" if moe.granularity > 1 else ""
    tag += f"k{moe.top_k}" if moe.router == "token_choice" and moe.top_k != moe.granularity else ""
    parts.append(tag)
  parts.append(short_number(tokens))
  return "-".join(parts)


def run_id(study: str, cfg: Config) -> str:
  """`<study>-<size tag>-<8 hex>`: the hash covers the whole resolved config (DESIGN.md)."""
  return f"{study}-{size_tag(cfg, budget.total_tokens(cfg))}-{config_lib.config_hash(cfg)[:8]}"


def _describe(point: Point) -> str:
  return ", ".join(f"{k}={'<derived>' if callable(v) else v!r}" for k, v in point.items())


def expand_study(study: Study, filter: str | Filter | None = None, n_devices: int | None = None) -> list[RunSpec]:
  """Every run of a study that passes `filter`, validated (against n_devices when given).

  Every run resolves before any is returned: a bad value, or two runs that are the same run,
  fails the whole study with one line naming the run.
  """
  keep = parse_filter(filter) if isinstance(filter, str) else filter
  if study.cooldown:
    return _expand_branching(study, keep, n_devices)
  specs: list[RunSpec] = []
  first_index: dict[str, int] = {}
  for i, point in enumerate(study.sweep):
    try:
      cfg = resolve_point(study.base, point, study.derived, n_devices=n_devices)
    except ValueError as e:
      raise ValueError(f"{study.label} run {i} ({_describe(point)}): {e}") from None
    rid = run_id(study.label, cfg)
    if rid in first_index:
      raise ValueError(
        f"{study.label}: runs {first_index[rid]} and {i} are the same run {rid}; a grid must not repeat a run"
      )
    first_index[rid] = i
    specs.append(
      RunSpec(study.label, rid, cfg, counting.run_counts(cfg), slice=study.slice(cfg) if study.slice else "")
    )
  return [s for s in specs if keep is None or keep(s)]


# --------------------------------------------------------------------------------------------
# Finding studies


def _experiments():
  return importlib.import_module("mixlaws.experiments")


def studies() -> list[str]:
  """Names of the study files in mixlaws.experiments (files starting with _ are helpers)."""
  return sorted(m.name for m in pkgutil.iter_modules(_experiments().__path__) if not m.name.startswith("_"))


def variants(name: str) -> tuple[str, ...]:
  """The variants a study offers besides its default (its file's VARIANTS)."""
  return tuple(getattr(_module(name), "VARIANTS", ()))


def _module(name: str):
  """The study file's module: one of mixlaws.experiments by name, or any Python file by its path."""
  if name.endswith(".py"):
    return _module_from_path(name)
  known = studies()
  if name not in known:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(f"study: unknown {name!r}{hint}; expected one of {', '.join(known)}")
  return importlib.import_module(f"mixlaws.experiments.{name}")


def _module_from_path(path: str):
  p = pathlib.Path(path)
  if not p.is_file():
    raise ValueError(f"study: {path}: no such file")
  spec = importlib.util.spec_from_file_location(f"_mixlaws_study_{p.stem}", p)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not callable(getattr(module, "get_study", None)):
    raise ValueError(f"study: {path} must define get_study(variant=None) returning a registry.Study")
  return module


def study_name(name: str) -> str:
  """The name a study's runs are filed under: `name`, or the file's stem for a path such as my_study.py."""
  return pathlib.Path(name).stem if name.endswith(".py") else name


def load(name: str, variant: str | None = None) -> Study:
  """The study `name` from mixlaws.experiments, or the study file at path `name` (ends in .py), optionally
  one of its variants (e.g. "tiny")."""
  module = _module(name)
  offered = tuple(getattr(module, "VARIANTS", ()))
  if variant is not None and variant not in offered:
    raise ValueError(f"variant: {name} has no variant {variant!r}; expected one of {', '.join(offered) or '(none)'}")
  study = module.get_study(variant)
  if study.name != study_name(name):
    where = name if name.endswith(".py") else f"experiments/{name}.py"
    raise ValueError(f"study: {where} returns a study named {study.name!r}; name it {study_name(name)!r}")
  return dataclasses.replace(study, variant=variant)


def expand(
  name: str, variant: str | None = None, filter: str | None = None, n_devices: int | None = None
) -> list[RunSpec]:
  """The RunSpecs of a study (or of a variant such as "tiny"), optionally filtered ("G>=4,tokens<=33B")."""
  keep = parse_filter(filter) if filter else None  # a bad filter fails before the study loads
  return expand_study(load(name, variant), keep, n_devices=n_devices)


# --------------------------------------------------------------------------------------------
# Filters: comma-separated clauses FIELD OP VALUE, all of which must hold.

_OPS = {
  ">=": operator.ge,
  "<=": operator.le,
  "!=": operator.ne,
  "==": operator.eq,
  "=": operator.eq,
  ">": operator.gt,
  "<": operator.lt,
}
_CLAUSE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|!=|==|=|>|<)\s*(\S.*?)\s*$")
_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def _example_fields() -> dict[str, Any]:
  """The fields of a base-config RunSpec: the names a filter may use and the type of each."""
  cfg = config_lib.resolve(config_lib.base_config())
  return RunSpec("", "", cfg, counting.run_counts(cfg)).fields()


def _number(text: str) -> float | None:
  """A number, with an optional K/M/B/T suffix ("16B", "2.5e8"); None when not a number."""
  scale = _SUFFIX.get(text[-1:].upper(), 1) if text[-1:].isalpha() else 1
  body = text[:-1] if scale != 1 else text
  try:
    return float(body) * scale
  except ValueError:
    return None


@dataclasses.dataclass(frozen=True)
class Filter:
  """A parsed filter; call it on a RunSpec."""

  text: str
  clauses: tuple[tuple[str, str, str], ...]  # (field, op, value text)

  def __call__(self, spec: RunSpec) -> bool:
    fields = spec.fields()
    return all(_holds(fields[name], op, text) for name, op, text in self.clauses)


def _holds(value: Any, op: str, text: str) -> bool:
  if isinstance(value, bool):
    return _OPS[op](value, text.lower() in ("true", "1", "yes"))
  if isinstance(value, (int, float)):
    return _OPS[op](value, _number(text))
  return _OPS[op](str(value), text.strip("'\""))


def parse_filter(text: str) -> Filter:
  """Parses "G>=4,router=switch,tokens<=16B"; unknown fields and malformed clauses are errors.

  Fields: the plan's columns (`flops` in the Chinchilla convention), the counting columns of
  config.json (`flops_kaplan`, `active_params_ludziejewski2025`, …) and dotted config fields.
  """
  example = _example_fields()
  known = {n.lower(): n for n in example}  # field names match case-insensitively: g>=4 is G>=4
  clauses = []
  for clause in text.split(","):
    match = _CLAUSE.match(clause)
    if not match:
      raise ValueError(
        f"filter: cannot parse {clause.strip()!r}; expected FIELD OP VALUE with OP one of {' '.join(_OPS)}"
      )
    name, op, value = match.groups()
    if name.lower() not in known:
      close = difflib.get_close_matches(name, list(known.values()), n=1)
      hint = f" (did you mean {close[0]}?)" if close else ""
      raise ValueError(f"filter: unknown field {name!r}{hint}")
    name = known[name.lower()]
    sample = example[name]
    if isinstance(sample, (int, float)) and not isinstance(sample, bool) and _number(value) is None:
      raise ValueError(f"filter: {name} is a number, got {value!r}")
    if isinstance(sample, str) and op not in ("=", "==", "!="):
      raise ValueError(f"filter: {name} is text; compare it with = or !=, not {op}")
    clauses.append((name, op, value))
  return Filter(text, tuple(clauses))


# --------------------------------------------------------------------------------------------
# Cost: FLOPs and chip-hours on an accelerator at an assumed MFU


def peak_flops(accelerator: str) -> float:
  """Dense bf16 peak FLOP/s of one chip (mixlaws.accelerators); `cpu` is measured in-process (float32)."""
  from mixlaws import accelerators

  if accelerator.lower() == "cpu":
    from mixlaws import bench

    return bench.matmul_peak_flops()
  try:
    return accelerators.get(accelerator).peak_flops
  except ValueError:
    known = ", ".join([*accelerators.ACCELERATORS, "cpu"])
    raise ValueError(f"accelerator: unknown {accelerator!r}; expected one of {known}") from None


@dataclasses.dataclass(frozen=True)
class Cost:
  """Chip-hours of training FLOPs on one accelerator at an assumed MFU."""

  accelerator: str
  mfu: float
  peak_flops: float  # FLOP/s of one chip

  @classmethod
  def of(cls, accelerator: str, mfu: float) -> Cost:
    if not 0 < mfu <= 1:
      raise ValueError(f"mfu: must lie in (0, 1], got {mfu}")
    return cls(accelerator, mfu, peak_flops(accelerator))

  def chip_hours(self, flops: float) -> float:
    return flops / (self.peak_flops * self.mfu) / 3600


def totals(specs: Sequence[RunSpec], cost: Cost, convention: str = "chinchilla") -> dict[str, Any]:
  """Total training FLOPs of `specs` under `convention` (a branch counts its cooldown only), and chip-hours."""
  flops = sum(s.trained_flops(convention) for s in specs)
  return {
    "runs": len(specs),
    "flops": flops,
    "convention": convention,
    "accelerator": cost.accelerator,
    "peak_flops": cost.peak_flops,
    "mfu": cost.mfu,
    "chip_hours": cost.chip_hours(flops),
  }


def summary(convention: str = "chinchilla") -> list[dict[str, Any]]:
  """One row per study and variant: run count and total training FLOPs under `convention`."""
  rows = []
  for name in studies():
    for variant in (None, *variants(name)):
      study = load(name, variant)
      specs = expand_study(study)
      flops = sum(s.trained_flops(convention) for s in specs)
      rows.append({"study": study.label, "runs": len(specs), "flops": flops, "description": study.description})
  return rows


# --------------------------------------------------------------------------------------------
# Learning-rate × batch-size grids (Li et al. 2025's Step Law; Wang et al. 2024's dense vs MoE optima)


def lr_batch_grid(points: Iterable[Point], lrs: Iterable[float | Derived], batches: Iterable[int]) -> Sweep:
  """Each point (a shape at a budget) at every (train.lr, train.batch_size) pair.

  An lr may be a number or a rule of the resolved config (e.g. a multiple of a size-dependent
  LR), so one grid spans the same relative range at every size. `batches` count sequences.
  """
  lrs, batches = list(lrs), [int(b) for b in batches]
  if not lrs or not batches:
    raise ValueError("lr_batch_grid: needs at least one learning rate and one batch size")
  return [{**p, "train.lr": lr, "train.batch_size": b} for p in points for lr in lrs for b in batches]


# --------------------------------------------------------------------------------------------
# Evaluation cost


@dataclasses.dataclass(frozen=True)
class EvalPlan:
  """The downstream evaluation a study plans for each run: tasks scored at some checkpoints."""

  tasks: tuple[tuple[str, int, int], ...]  # (task, examples, scored tokens per example: context + every choice)
  checkpoints: int = 1  # checkpoints evaluated per run

  def tokens(self) -> int:
    """Tokens scored per checkpoint."""
    return sum(examples * per_example for _, examples, per_example in self.tasks)


def eval_flops(specs: Sequence[RunSpec], plan: EvalPlan, convention: str = "chinchilla") -> float:
  """Forward-only FLOPs of `plan` over `specs`: a third of a training token's FLOPs (2N of 6N) per token scored."""
  return sum(plan.checkpoints * plan.tokens() * s.counts.conventions[convention].flops_per_token / 3 for s in specs)


# Warmup-stable-decay branches: one trunk per shape, one cooldown branch per token budget.
#
# With the wsd schedule, runs of one shape that differ only in their budget D share everything up
# to the start of their decay: same init, same data order, same warmup and constant learning rate.
# The trunk trains that shared stable phase once, saving a fork checkpoint (train state and data
# iterator) at each branch's fork step, the last step boundary at or below D_i − cooldown_i. Each
# branch restores its fork and trains its cooldown with its own config, which is exactly the
# standalone wsd run of budget D_i: so its losses are those of that run (tests/train/test_branches.py).
# A D-grid then costs max_i fork_i + Σ_i cooldown_i tokens instead of Σ_i D_i.

ROLES = ("trunk", "branch")


@dataclasses.dataclass(frozen=True)
class Lineage:
  """A run's place in a trunk/branch family: config.json's "lineage" and the store's lineage columns."""

  role: str  # trunk | branch
  trunk: str  # the trunk's run id (a trunk names itself)
  fork_steps: tuple[int, ...]  # trunk: the steps it saves fork checkpoints at; branch: its one fork step
  fork_tokens: tuple[int, ...]  # tokens seen after each of fork_steps
  cooldown_tokens: int = 0  # branch: its budget minus its fork's tokens

  def to_dict(self) -> dict[str, Any]:
    return {"role": self.role, "trunk": self.trunk, "fork_steps": list(self.fork_steps),
            "fork_tokens": list(self.fork_tokens), "cooldown_tokens": self.cooldown_tokens}  # fmt: skip

  @classmethod
  def from_dict(cls, record: Any, source: str = "config.json") -> Lineage:
    """Parses and checks a lineage record; a malformed one is a one-line ValueError naming `source`."""
    try:
      lineage = cls(str(record["role"]), str(record["trunk"]), tuple(int(s) for s in record["fork_steps"]),
                    tuple(int(t) for t in record["fork_tokens"]), int(record.get("cooldown_tokens", 0)))  # fmt: skip
    except (KeyError, TypeError, ValueError) as e:
      raise ValueError(f"{source}: lineage is malformed ({type(e).__name__}: {e})") from None
    if lineage.role not in ROLES or len(lineage.fork_steps) != len(lineage.fork_tokens) or not lineage.fork_steps:
      raise ValueError(f"{source}: lineage needs role trunk|branch and matching, non-empty fork_steps/fork_tokens")
    if lineage.role == "branch" and len(lineage.fork_steps) != 1:
      raise ValueError(f"{source}: a branch's lineage names exactly one fork step")
    return lineage


def _steps_within(cfg: Config, tokens: float) -> int:
  """The most steps whose tokens stay at or below `tokens` (tokens_after is non-decreasing in steps)."""
  low, high = 0, budget.total_steps(cfg)
  while low < high:
    mid = (low + high + 1) // 2
    if budget.tokens_after(cfg, mid) <= tokens:
      low = mid
    else:
      high = mid - 1
  return low


def _short_hash(*parts: str) -> str:
  import hashlib

  return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]


def _with_train(cfg: Config, **fields: Any) -> Config:
  values = cfg.to_dict()
  values["train"].update(fields)
  return config_lib.resolve(values)


def branch_runs(study_label: str, cfgs: Sequence[Config]) -> list[RunSpec]:
  """One trunk and one branch per budget for configs of one shape that differ only in train.tokens.

  The warmup must not depend on the budget: a warmup fraction is turned into the tokens it gives
  the smallest budget, and the warmup must end within the trunk and within the smallest budget.
  Ids: the trunk `<study>-<size tag at its length>-trunk-<8 hex>`, hashing its config and fork
  steps; a branch `<study>-<size tag>-<8 hex>`, hashing its config and its trunk's id.
  """
  from mixlaws import optim  # the schedule's own arithmetic (imported late: optim pulls in JAX)

  smallest = min(cfgs, key=budget.total_tokens)
  warm = optim.warmup_tokens(smallest)
  cfgs = [_with_train(c, warmup_tokens=warm, warmup_steps=0, warmup_fraction=0.0) for c in cfgs]
  forks = []
  for c in cfgs:
    step = _steps_within(c, optim.decay_start_tokens(c))
    forks.append((step, budget.tokens_after(c, step)))
  trunk_steps, trunk_tokens = max(forks)
  if warm > min(trunk_tokens, budget.total_tokens(smallest)):
    raise ValueError(
      f"train.warmup_tokens: the warmup ({warm} tokens) must end before the trunk does ({trunk_tokens} tokens) "
      f"and within the smallest budget ({budget.total_tokens(smallest)})"
    )
  trunk_cfg = _with_train(cfgs[0], tokens=trunk_tokens, schedule="constant")
  fork_steps = tuple(sorted({s for s, _ in forks}))
  fork_tokens = tuple(budget.tokens_after(trunk_cfg, s) for s in fork_steps)
  tag = size_tag(trunk_cfg, trunk_tokens)
  trunk_id = f"{study_label}-{tag}-trunk-{_short_hash(config_lib.config_hash(trunk_cfg), repr(fork_steps))}"
  out = [RunSpec(study_label, trunk_id, trunk_cfg, counting.run_counts(trunk_cfg),
                 Lineage("trunk", trunk_id, fork_steps, fork_tokens))]  # fmt: skip
  for c, (step, tokens) in zip(cfgs, forks):
    total = budget.total_tokens(c)
    rid = f"{study_label}-{size_tag(c, total)}-{_short_hash(config_lib.config_hash(c), trunk_id)}"
    lineage = Lineage("branch", trunk_id, (step,), (tokens,), total - tokens)
    out.append(RunSpec(study_label, rid, c, counting.run_counts(c), lineage))
  return out


def _shape_key(cfg: Config) -> str:
  values = cfg.to_dict()
  values["train"] = {k: v for k, v in values["train"].items() if k != "tokens"}
  return repr(sorted((section, sorted(fields.items())) for section, fields in values.items()))


def _expand_branching(study: Study, keep: Filter | None, n_devices: int | None) -> list[RunSpec]:
  """expand_study for a study with a cooldown: every point becomes a wsd run; shapes with several
  budgets become a trunk and its branches. A filter picks branches (and runs); a trunk stays while
  any of its branches does, with every fork of its shape, so its id never depends on the filter."""
  if not 0 < study.cooldown < 1:
    raise ValueError(f"{study.label}: cooldown must lie in (0, 1), got {study.cooldown}")
  base = study.base.copy_and_resolve_references()
  base.train.schedule = "wsd"
  base.train.decay_fraction = study.cooldown
  groups: dict[str, list[tuple[int, Config]]] = {}
  for i, point in enumerate(study.sweep):
    try:
      cfg = resolve_point(base, point, study.derived, n_devices=n_devices)
      if cfg.train.steps:
        raise ValueError("train.steps: branches need token budgets (train.tokens), not step counts")
    except ValueError as e:
      raise ValueError(f"{study.label} run {i} ({_describe(point)}): {e}") from None
    groups.setdefault(_shape_key(cfg), []).append((i, cfg))
  specs: list[RunSpec] = []
  for members in groups.values():
    indices, cfgs = [i for i, _ in members], [c for _, c in members]
    budgets = [budget.total_tokens(c) for c in cfgs]
    if len(set(budgets)) < len(budgets):
      raise ValueError(
        f"{study.label}: runs {indices} repeat a token budget of one shape; a grid must not repeat a run"
      )
    if len(cfgs) == 1:
      specs.append(RunSpec(study.label, run_id(study.label, cfgs[0]), cfgs[0], counting.run_counts(cfgs[0])))
      continue
    try:
      family = branch_runs(study.label, cfgs)
    except ValueError as e:
      raise ValueError(f"{study.label} runs {indices}: {e}") from None
    kept = [s for s in family[1:] if keep is None or keep(s)]
    specs += [family[0], *kept] if kept else []
  specs = [s for s in specs if s.lineage is not None or keep is None or keep(s)]
  return [dataclasses.replace(s, slice=study.slice(s.config)) for s in specs] if study.slice else specs


def branching_summary(specs: Sequence[RunSpec], convention: str = "chinchilla") -> dict[str, Any] | None:
  """Trunks, branches, training FLOPs with and without branching and their ratio; None without branches.

  Without branching, every branch would be a run of its whole budget from scratch; runs outside any
  family cost the same either way.
  """
  if not any(s.lineage for s in specs):
    return None
  with_branches = sum(s.trained_flops(convention) for s in specs)
  without = sum(s.counts.flops(convention) for s in specs if s.is_point)
  trunks = {s.run_id: s for s in specs if s.lineage is not None and s.lineage.role == "trunk"}
  families = []
  for trunk_id, trunk in trunks.items():
    branches = [
      s for s in specs if s.lineage is not None and s.lineage.role == "branch" and s.lineage.trunk == trunk_id
    ]
    families.append({"trunk": trunk_id, "trunk_tokens": trunk.counts.tokens,
                     "branches": [{"run_id": b.run_id, "tokens": b.counts.tokens, "fork_step": b.lineage.fork_steps[0],
                                   "fork_tokens": b.lineage.fork_tokens[0],
                                   "cooldown_tokens": b.lineage.cooldown_tokens} for b in branches]})  # fmt: skip
  points = sum(s.is_point for s in specs)
  return {"trunks": len(trunks), "branches": sum(len(f["branches"]) for f in families), "points": points,
          "flops_with_branches": with_branches, "flops_one_run_per_point": without,
          "ratio": with_branches / without, "convention": convention, "families": families}  # fmt: skip


def branching_text(summary: dict[str, Any]) -> str:
  """The trunk/branch structure as lines for `mixlaws plan`: each trunk with its forks, then the FLOPs ratio."""
  lines = []
  for family in summary["families"]:
    lines.append(f"trunk {family['trunk']} ({short_number(family['trunk_tokens'])} tokens)")
    for b in family["branches"]:
      lines.append(f"  └ {b['run_id']}: fork at step {b['fork_step']} ({short_number(b['fork_tokens'])} tokens), "
                   f"cooldown {short_number(b['cooldown_tokens'])} tokens")  # fmt: skip
  lines.append(
    f"branching: {summary['trunks']} trunks + {summary['branches']} branches for {summary['points']} (N, D) points: "
    f"{summary['flops_with_branches']:.3g} training FLOPs vs {summary['flops_one_run_per_point']:.3g} one run per "
    f"point ({summary['convention']}), ratio {summary['ratio']:.3f}"
  )
  return "\n".join(lines)
