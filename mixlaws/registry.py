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
  slice: str = ""  # the slice type the study declares for this run; "" → none declared

  def record(self) -> dict[str, Any]:
    """config.json of the run dir (mixlaws/rundir.py): study, run id, resolved config, counts."""
    return {
      "study": self.study,
      "run_id": self.run_id,
      "config": self.config.to_dict(),
      "counts": self.counts.to_dict(),
    }

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
    specs.append(RunSpec(study.label, rid, cfg, counting.run_counts(cfg), study.slice(cfg) if study.slice else ""))
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
  """Total training FLOPs of `specs` under `convention`, and their chip-hours at `cost`."""
  flops = sum(s.counts.flops(convention) for s in specs)
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
      flops = sum(s.counts.flops(convention) for s in specs)
      rows.append({"study": study.label, "runs": len(specs), "flops": flops, "description": study.description})
  return rows
