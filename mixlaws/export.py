"""Loss tables and curves out of the results store: CSV, Parquet, Markdown and LaTeX (booktabs).

The loss table has one row per run: study, run id, router ("dense" for one-expert runs), E, G,
top-k, d_model, n_layers, total/active/non-embedding parameters, tokens, training FLOPs under the
chosen counting convention (column `flops_<convention>`), the final loss and the run state. Rows
are sorted the way papers list them: dense first, then by router, E, G, top-k, active parameters
and tokens. CSV and Parquet keep raw typed values; Markdown and LaTeX format them for reading.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd

from mixlaws import console, counting, store

FORMATS = ("csv", "parquet", "md", "latex")
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".md": "md", ".tex": "latex"}
_BASE_COLUMNS = (
  "study",
  "run_id",
  "router",
  "expansion_rate",
  "granularity",
  "top_k",
  "d_model",
  "n_layers",
  "params_total",
  "params_active",
  "params_non_embedding",
  "tokens",
)
# (Markdown header, LaTeX header) of the columns with a conventional name in papers.
_HEADERS = {
  "study": ("study", "Study"),
  "run_id": ("run", "Run"),
  "router": ("router", "Router"),
  "expansion_rate": ("E", "$E$"),
  "granularity": ("G", "$G$"),
  "top_k": ("top-k", "top-$k$"),
  "d_model": ("d_model", r"$d_\mathrm{model}$"),
  "n_layers": ("layers", r"$n_\mathrm{layers}$"),
  "params_total": ("N total", r"$N_\mathrm{total}$"),
  "params_active": ("N active", r"$N_\mathrm{active}$"),
  "params_non_embedding": ("N non-emb", r"$N_\mathrm{non\mbox{-}emb}$"),
  "tokens": ("tokens", "$D$"),
  "state": ("state", "State"),
}
_LOSS_HEADERS = {"final_eval": ("final eval loss", "Eval loss"), "smoothed_train": ("train loss", "Train loss")}
_MISSING = ("–", "--")  # (Markdown, LaTeX) for a value a run does not have (yet)


def loss_table(
  st: store.Store,
  study: str,
  *,
  convention: str = "chinchilla",
  loss: str = "final_eval",
  window: int | float = store.DEFAULT_WINDOW,
  columns: tuple[str, ...] = (),
) -> pd.DataFrame:
  """The loss table of `study`; runs without a final loss get NaN. attrs: convention, loss, left_out.

  `columns` adds runs columns or metrics (each run's value at its newest step); a metric is named
  "name" (looked up in the downstream, eval, then train split) or "split:name".
  """
  if convention not in counting.CONVENTIONS:
    raise ValueError(f"convention: unknown {convention!r}; expected one of {', '.join(counting.CONVENTIONS)}")
  runs = st.runs(study)
  if runs.empty:
    raise ValueError(f"{study}: no runs in the results store {st.path}; run `mixlaws collect {study}` first")
  final = st.final_losses(study, loss=loss, window=window)
  runs["loss"] = runs["run_id"].map(dict(zip(final["run_id"], final["loss"]))).astype(float)
  runs["router"] = runs["router"].where(runs["n_experts"] > 1, "dense")
  runs = runs.sort_values(
    ["n_experts", "router", "expansion_rate", "granularity", "top_k", "params_active", "tokens", "run_id"],
    key=lambda c: c > 1 if c.name == "n_experts" else c,
  )
  table = runs[[*_BASE_COLUMNS, f"flops_{convention}", "loss", "state"]].reset_index(drop=True)
  for spec in columns:
    if spec not in table.columns:
      table[spec] = _extra_column(st, study, spec, runs).to_numpy()
  table.attrs.update(convention=convention, loss=loss, left_out=final.attrs["left_out"])
  return table


def _extra_column(st: store.Store, study: str, spec: str, runs: pd.DataFrame) -> pd.Series:
  """Column `spec` aligned with `runs`: a runs column, or a metric at each run's newest step."""
  if spec in runs.columns:
    return runs[spec]
  names = st.metric_names(study)
  if ":" in spec and tuple(spec.split(":", 1)) in names:
    split, name = spec.split(":", 1)
  else:
    split = next((s for s in ("downstream", "eval", "train") if (s, spec) in names), None)
    name = spec
    if split is None:
      raise ValueError(f"columns: {spec!r} is neither a runs column nor a metric logged by study {study!r}")
  at_end = st.metric_at_end(study, name, split=split)
  return runs["run_id"].map(dict(zip(at_end["run_id"], at_end["value"]))).astype(float)


def format_for(fmt: str | None, out: str | os.PathLike | None, default: str = "md") -> str:
  """The format to write: `fmt`, else the suffix of `out`, else `default`."""
  if fmt is not None:
    if fmt not in FORMATS:
      raise ValueError(f"format: unknown {fmt!r}; expected one of {', '.join(FORMATS)}")
    return fmt
  if out is not None:
    suffix = os.path.splitext(os.fspath(out))[1].lower()
    if suffix not in SUFFIXES:
      raise ValueError(f"{os.fspath(out)}: cannot tell the format from the suffix; give --format")
    return SUFFIXES[suffix]
  return default


def write(table: pd.DataFrame, fmt: str, out: str | os.PathLike | None = None) -> str | None:
  """Writes `table` as `fmt` to `out`; with no `out`, returns the text (Parquet needs a file)."""
  fmt = format_for(fmt, out)
  if fmt == "parquet":
    if out is None:
      raise ValueError("out: Parquet is a binary format; give an output file (--out PATH)")
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(out))), exist_ok=True)
    table.to_parquet(os.fspath(out), index=False)
    return None
  if fmt == "csv":
    text = table.to_csv(index=False)
  elif fmt == "md":
    text = to_markdown(table)
  else:
    text = to_latex(table)
  if out is None:
    return text
  os.makedirs(os.path.dirname(os.path.abspath(os.fspath(out))), exist_ok=True)
  with open(os.fspath(out), "w") as f:
    f.write(text)
  return None


# Markdown and LaTeX are written here rather than with pandas' to_markdown/to_latex: those need
# tabulate and jinja2, and their layout changes between versions, which the golden files pin.


def to_markdown(table: pd.DataFrame) -> str:
  """A GitHub pipe table: text left-aligned, numbers right-aligned and formatted for reading."""
  headers = [_header(table, c, latex=False).replace("|", r"\|") for c in table.columns]
  align = ["---:" if _is_numeric(table[c]) else ":---" for c in table.columns]
  lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
  for row in table.itertuples(index=False):
    cells = [_cell(c, v, latex=False).replace("|", r"\|") for c, v in zip(table.columns, row)]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame) -> str:
  """A booktabs tabular (needs \\usepackage{booktabs}): rules top, mid and bottom, no vertical lines."""
  spec = "".join("r" if _is_numeric(table[c]) else "l" for c in table.columns)
  lines = [
    rf"\begin{{tabular}}{{{spec}}}",
    r"\toprule",
    " & ".join(_header(table, c, latex=True) for c in table.columns) + r" \\",
    r"\midrule",
  ]
  for row in table.itertuples(index=False):
    lines.append(" & ".join(_cell(c, v, latex=True) for c, v in zip(table.columns, row)) + r" \\")
  lines += [r"\bottomrule", r"\end{tabular}"]
  return "\n".join(lines) + "\n"


def _header(table: pd.DataFrame, column: str, latex: bool) -> str:
  if column in _HEADERS:
    return _HEADERS[column][latex]
  if column == "loss":
    return _LOSS_HEADERS[table.attrs.get("loss", "final_eval")][latex]
  if column.startswith("flops_"):
    return f"FLOPs ({_latex_escape(column[6:]) if latex else column[6:]})"
  return _latex_escape(column) if latex else column


def _is_numeric(column: pd.Series) -> bool:
  return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _cell(column: str, value: Any, latex: bool) -> str:
  if value is None or isinstance(value, float) and math.isnan(value):
    return _MISSING[latex]
  if isinstance(value, str):
    return _latex_escape(value) if latex else value
  if column.startswith("flops_"):
    return _scientific(value, latex)
  if column.startswith(("params_", "active_params_")) or column in ("tokens", "steps"):
    return console.human(value)
  if column == "loss":
    return f"{value:.4f}"
  if float(value).is_integer() and not isinstance(value, float):
    return str(int(value))
  return f"{value:.4g}"


def _scientific(value: float, latex: bool) -> str:
  """3 significant figures: 3.10e18 in Markdown, $3.10 \\times 10^{18}$ in LaTeX."""
  if value == 0:
    return "0"
  mantissa, exponent = f"{value:.2e}".split("e")
  return rf"${mantissa} \times 10^{{{int(exponent)}}}$" if latex else f"{mantissa}e{int(exponent)}"


_LATEX_SPECIAL = {
  "\\": r"\textbackslash{}",
  "&": r"\&",
  "%": r"\%",
  "$": r"\$",
  "#": r"\#",
  "_": r"\_",
  "{": r"\{",
  "}": r"\}",
  "~": r"\textasciitilde{}",
  "^": r"\textasciicircum{}",
}


def _latex_escape(text: str) -> str:
  return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
