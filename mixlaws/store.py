"""The results store: one SQLite file of runs and their metrics, queried as pandas DataFrames.

Tables (DESIGN.md, "Results store"):
  runs     one row per run: study, run_id, state, step, attempt, updated_at, host, error, the
           resolved config and the counts as JSON, and flat columns (CONFIG_COLUMNS, COUNT_COLUMNS)
           so that queries and fits need no JSON.
  metrics  (run_id, split, name, step) → value, tokens, flops, attempt. One value per key: the
           newest attempt's (after a resume the newest attempt wins for a step).
  chunks   (run_id, name) → size, attempt, records, skipped: the metric chunks already ingested,
           so a collect with nothing new reads no chunk twice.

The schema version is SQLite's `user_version`; MIGRATIONS[i] takes a store from version i to i + 1.
Flat columns that the code declares later (say, a new counting convention) are added to `runs` by
ALTER TABLE, which older readers tolerate, so they need no version step. The run dirs stay the
source of truth: delete the file and collect again to rebuild it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
  import pandas as pd

FILE_NAME = "results.sqlite"
SCHEMA_VERSION = 1
LOSSES = ("final_eval", "smoothed_train")

# The final 1% of training: the smoothing window of `final_losses` and `loss_at_tokens` by default.
DEFAULT_WINDOW = 0.01

MIGRATIONS: tuple[tuple[str, ...], ...] = (
  # 0 → 1: the three tables. Flat runs columns are added by `_add_flat_columns`.
  (
    """CREATE TABLE runs (
      run_id TEXT PRIMARY KEY,
      study TEXT NOT NULL,
      state TEXT NOT NULL,
      step INTEGER NOT NULL,
      attempt INTEGER NOT NULL,
      updated_at REAL,
      host TEXT,
      error TEXT,
      config TEXT NOT NULL,
      counts TEXT NOT NULL
    )""",
    "CREATE INDEX runs_by_study ON runs (study)",
    # Keyed (run, split, name, step) so one curve is one contiguous key range.
    """CREATE TABLE metrics (
      run_id TEXT NOT NULL,
      split TEXT NOT NULL,
      name TEXT NOT NULL,
      step INTEGER NOT NULL,
      value REAL,
      tokens INTEGER,
      flops REAL,
      attempt INTEGER NOT NULL,
      PRIMARY KEY (run_id, split, name, step)
    ) WITHOUT ROWID""",
    """CREATE TABLE chunks (
      run_id TEXT NOT NULL,
      name TEXT NOT NULL,
      size INTEGER NOT NULL,
      attempt INTEGER NOT NULL,
      records INTEGER NOT NULL,
      skipped INTEGER NOT NULL,
      PRIMARY KEY (run_id, name)
    ) WITHOUT ROWID""",
  ),
)

# Flat config columns: name → (section, field, SQL type). n_experts is derived (E·G).
CONFIG_COLUMNS: dict[str, tuple[str, str, str]] = {
  "n_layers": ("model", "n_layers", "INTEGER"),
  "d_model": ("model", "d_model", "INTEGER"),
  "n_heads": ("model", "n_heads", "INTEGER"),
  "d_ff": ("model", "d_ff", "INTEGER"),
  "vocab_size": ("model", "vocab_size", "INTEGER"),
  "seq_len": ("model", "seq_len", "INTEGER"),
  "activation": ("model", "activation", "TEXT"),
  "n_experts": ("moe", "n_experts", "INTEGER"),
  "expansion_rate": ("moe", "expansion_rate", "INTEGER"),
  "granularity": ("moe", "granularity", "INTEGER"),
  "top_k": ("moe", "top_k", "INTEGER"),
  "router": ("moe", "router", "TEXT"),
  "capacity_factor": ("moe", "capacity_factor", "REAL"),
  "batch_size": ("train", "batch_size", "INTEGER"),
  "lr": ("train", "lr", "REAL"),
  "schedule": ("train", "schedule", "TEXT"),
}
STATUS_COLUMNS = ("state", "step", "attempt", "updated_at", "host", "error")
# A WSD trunk or branch (config.json's "lineage", registry.Lineage); NULL for a run trained alone to its end.
# fork_tokens: a branch's fork, a trunk's last fork; cooldown_tokens: a branch's tokens after its fork.
LINEAGE_COLUMNS: dict[str, str] = {
  "role": "TEXT",
  "trunk": "TEXT",
  "fork_tokens": "INTEGER",
  "cooldown_tokens": "INTEGER",
}
TRUNK_LEFT_OUT = "a WSD trunk: its loss is taken mid-run, before any cooldown; its branches are the points"


def _count_columns() -> dict[str, str]:
  """Every counting column of config.json (`counting.RunCounts.to_dict`) with its SQL type."""
  from mixlaws import config, counting

  counts = counting.run_counts(config.resolve(config.base_config())).to_dict()
  return {name: "REAL" if isinstance(value, float) else "INTEGER" for name, value in counts.items()}


COUNT_COLUMNS: dict[str, str] = _count_columns()
RUN_COLUMNS: tuple[str, ...] = (
  ("study", "run_id")
  + STATUS_COLUMNS
  + tuple(CONFIG_COLUMNS)
  + tuple(COUNT_COLUMNS)
  + tuple(LINEAGE_COLUMNS)
  + ("config", "counts")
)


def default_path(root: str | os.PathLike) -> str:
  """`<root>/results.sqlite`; SQLite needs a local file, so a gs:// root needs an explicit path."""
  root = os.fspath(root)
  if "://" in root:
    raise ValueError(f"{root}: a remote run root needs a local results-store path (--store PATH)")
  return os.path.join(root, FILE_NAME)


def run_row(record: dict[str, Any], status: dict[str, Any] | None, source: str = "config.json") -> dict[str, Any]:
  """The runs row of one run from its config.json record and status.json (None → pending)."""
  if not isinstance(record, dict):
    raise ValueError(f"{source}: expected a JSON object, got {type(record).__name__}")
  missing = [key for key in ("study", "run_id", "config", "counts") if key not in record]
  if missing:
    raise ValueError(f"{source}: lacks the field {missing[0]!r}")
  cfg, counts = record["config"], record["counts"]
  if not isinstance(counts, dict):
    raise ValueError(f"{source}: counts is {type(counts).__name__}, expected a JSON object")

  def field(section: str, name: str) -> Any:
    try:
      return cfg[section][name]
    except (KeyError, TypeError):
      raise ValueError(f"{source}: the config lacks {section}.{name}") from None

  row: dict[str, Any] = {"study": str(record["study"]), "run_id": str(record["run_id"])}
  for column, (section, name, _) in CONFIG_COLUMNS.items():
    if name == "n_experts":
      row[column] = field("moe", "expansion_rate") * field("moe", "granularity")
    else:
      row[column] = field(section, name)
  status = status or {}
  row.update(
    state=status.get("state", "pending"),
    step=int(status.get("step", 0)),
    attempt=int(status.get("attempt", 0)),
    updated_at=status.get("updated_at"),
    host=status.get("host"),
    error=status.get("error"),
  )
  row.update({column: counts.get(column) for column in COUNT_COLUMNS})
  row.update(_lineage_columns(record.get("lineage"), source))
  row["config"] = json.dumps(cfg, sort_keys=True)
  row["counts"] = json.dumps(counts, sort_keys=True)
  return {column: row[column] for column in RUN_COLUMNS}


def _lineage_columns(record: Any, source: str) -> dict[str, Any]:
  """The lineage columns of a run: role, parent trunk, fork and cooldown tokens (None for a lone run)."""
  if record is None:
    return dict.fromkeys(LINEAGE_COLUMNS)
  from mixlaws import registry

  lineage = registry.Lineage.from_dict(record, source)
  return {"role": lineage.role, "trunk": lineage.trunk, "fork_tokens": lineage.fork_tokens[-1],
          "cooldown_tokens": lineage.cooldown_tokens if lineage.role == "branch" else None}  # fmt: skip


class Store:
  """A results store; creates and migrates the file on open (unless create=False)."""

  def __init__(self, path: str | os.PathLike, *, create: bool = True, timeout: float = 60.0):
    self.path = os.fspath(path)
    if not create and not os.path.exists(self.path):
      raise ValueError(f"{self.path}: no results store; run `mixlaws collect STUDY` first")
    if create:
      os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
    # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE), so writers queue on the
    # busy timeout instead of failing when a read lock would have to be upgraded.
    self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
    try:
      # 16 KiB pages (a no-op once the file exists): fewer B-tree splits and WAL frames per
      # ingested value than the default 4 KiB; bulk ingest measured 10-20% faster.
      self._db.execute("PRAGMA page_size=16384")
      self._wal(timeout)
      # In WAL mode NORMAL cannot corrupt the file; a power cut may lose the last transactions,
      # which the next collect rewrites from the run dirs.
      self._db.execute("PRAGMA synchronous=NORMAL")
      self._migrate()
      self._add_flat_columns()
      self._add_skipped_table()
    except sqlite3.DatabaseError as e:
      self._db.close()
      raise ValueError(f"{self.path}: not a usable results store ({e})") from None
    except ValueError:
      self._db.close()
      raise

  def _wal(self, timeout: float) -> None:
    """Switches the file to WAL, which needs it to itself for a moment. SQLite reports "database is
    locked" at once instead of waiting on the busy timeout when several processes open a new store
    together, so it is retried here (once one of them has switched, the others' switch is a no-op)."""
    deadline = time.monotonic() + timeout
    while True:
      try:
        self._db.execute("PRAGMA journal_mode=WAL")
        return
      except sqlite3.OperationalError as e:
        if "locked" not in str(e) or time.monotonic() > deadline:
          raise
        time.sleep(0.01)

  def close(self) -> None:
    self._db.close()

  def __enter__(self) -> Store:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # Schema ------------------------------------------------------------------------------------

  @property
  def version(self) -> int:
    return self._db.execute("PRAGMA user_version").fetchone()[0]

  def _check_version(self) -> int:
    version = self.version
    if version > SCHEMA_VERSION:
      raise ValueError(
        f"{self.path}: results store has schema version {version}, newer than this mixlaws reads "
        f"({SCHEMA_VERSION}); upgrade mixlaws or collect into a new store"
      )
    return version

  def _migrate(self) -> None:
    if self._check_version() == SCHEMA_VERSION:
      return
    with self.transaction():
      for version in range(self._check_version(), SCHEMA_VERSION):  # re-read under the write lock
        for statement in MIGRATIONS[version]:
          self._db.execute(statement)
        self._db.execute(f"PRAGMA user_version = {version + 1}")

  def _add_flat_columns(self) -> None:
    declared = {**{c: t for c, (_, _, t) in CONFIG_COLUMNS.items()}, **COUNT_COLUMNS, **LINEAGE_COLUMNS}
    if not set(declared) - self._runs_table_columns():
      return
    with self.transaction():
      for column in [c for c in declared if c not in self._runs_table_columns()]:
        self._db.execute(f'ALTER TABLE runs ADD COLUMN "{column}" {declared[column]}')

  def _add_skipped_table(self) -> None:
    """Corrupt-chunk warnings kept beside the chunks, so a later collect and `status` still show them.
    A table that older readers ignore, so it needs no version step."""
    if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'skipped'").fetchone():
      with self.transaction():
        self._db.execute(
          "CREATE TABLE IF NOT EXISTS skipped (run_id TEXT NOT NULL, chunk TEXT NOT NULL, records INTEGER NOT NULL, "
          "warning TEXT NOT NULL, PRIMARY KEY (run_id, chunk)) WITHOUT ROWID"
        )

  def _runs_table_columns(self) -> set[str]:
    return {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}

  @contextlib.contextmanager
  def transaction(self) -> Iterator[sqlite3.Connection]:
    """One write transaction: everything inside commits together or not at all."""
    self._db.execute("BEGIN IMMEDIATE")
    try:
      yield self._db
    except BaseException:
      self._db.execute("ROLLBACK")
      raise
    self._db.execute("COMMIT")

  # Writing (used by collect) -----------------------------------------------------------------

  def stored_runs(self, study: str) -> dict[str, tuple]:
    """run_id → its runs row as a tuple in RUN_COLUMNS order."""
    columns = ", ".join(f'"{c}"' for c in RUN_COLUMNS)
    rows = self._db.execute(f"SELECT {columns} FROM runs WHERE study = ?", (study,))
    return {row[1]: tuple(row) for row in rows}

  def ingested_chunks(self, study: str) -> dict[str, dict[str, int]]:
    """run_id → {chunk name: size in bytes} of the chunks already ingested."""
    out: dict[str, dict[str, int]] = {}
    rows = self._db.execute(
      "SELECT c.run_id, c.name, c.size FROM chunks c JOIN runs r ON r.run_id = c.run_id WHERE r.study = ?", (study,)
    )
    for run_id, name, size in rows:
      out.setdefault(run_id, {})[name] = size
    return out

  def write_run(
    self, row: dict[str, Any], metrics: Sequence[tuple], chunks: Sequence[tuple], skipped: Sequence[tuple] = ()
  ) -> None:
    """Writes one run in one transaction.

    Args:
      row: the runs row (`run_row`).
      metrics: (run_id, split, name, step, value, tokens, flops, attempt) rows of this run. For a
        key written twice the later row wins unless it comes from an older attempt, so rows given
        oldest attempt first leave the newest attempt's values.
      chunks: (name, size, attempt, records, skipped) of the chunks these metrics came from.
      skipped: (chunk name, records lost, warning) of those chunks that had corrupt lines.
    """
    run_id = row["run_id"]
    columns = ", ".join(f'"{c}"' for c in RUN_COLUMNS)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in RUN_COLUMNS if c != "run_id")
    with self.transaction() as db:
      db.execute(
        f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' * len(RUN_COLUMNS))}) "
        f"ON CONFLICT (run_id) DO UPDATE SET {updates}",
        [row[c] for c in RUN_COLUMNS],
      )
      db.executemany(
        "INSERT INTO metrics (run_id, split, name, step, value, tokens, flops, attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id, split, name, step) DO UPDATE SET value = excluded.value, tokens = excluded.tokens, "
        "flops = excluded.flops, attempt = excluded.attempt WHERE excluded.attempt >= metrics.attempt",
        metrics,
      )
      db.executemany(
        "INSERT OR REPLACE INTO chunks (run_id, name, size, attempt, records, skipped) VALUES (?, ?, ?, ?, ?, ?)",
        ((run_id, *c) for c in chunks),
      )
      db.executemany("DELETE FROM skipped WHERE run_id = ? AND chunk = ?", ((run_id, c[0]) for c in chunks))
      db.executemany("INSERT INTO skipped (run_id, chunk, records, warning) VALUES (?, ?, ?, ?)",
                     ((run_id, *w) for w in skipped))  # fmt: skip

  def skipped(self, study: str) -> list[tuple[str, str, int, str]]:
    """(run_id, chunk, records lost, warning) of every corrupt chunk ingested for the study, in run order."""
    rows = self._db.execute(
      "SELECT s.run_id, s.chunk, s.records, s.warning FROM skipped s JOIN runs r ON r.run_id = s.run_id "
      "WHERE r.study = ? ORDER BY s.run_id, s.chunk",
      (study,),
    )
    return [tuple(r) for r in rows]

  # Queries -----------------------------------------------------------------------------------

  def _frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    # pandas is imported where queries need it: it takes ~0.5 s to load and the collector never does.
    import pandas as pd

    return pd.read_sql_query(sql, self._db, params=list(params))

  def studies(self) -> list[str]:
    return [row[0] for row in self._db.execute("SELECT DISTINCT study FROM runs ORDER BY study")]

  def runs(self, study: str | None = None) -> pd.DataFrame:
    """One row per run with every column of RUN_COLUMNS, ordered by study and run id."""
    columns = ", ".join(f'"{c}"' for c in RUN_COLUMNS)
    where, params = ("WHERE study = ?", [study]) if study is not None else ("", [])
    return self._frame(f"SELECT {columns} FROM runs {where} ORDER BY study, run_id", params)

  def metric_names(self, study: str) -> list[tuple[str, str]]:
    """(split, name) of every metric the study's runs logged."""
    rows = self._db.execute(
      "SELECT DISTINCT m.split, m.name FROM runs r JOIN metrics m ON m.run_id = r.run_id WHERE r.study = ? "
      "ORDER BY m.split, m.name",
      (study,),
    )
    return [tuple(row) for row in rows]

  def _series(self, study: str | None, split: str, name: str) -> pd.DataFrame:
    """run_id, step, tokens, value of one metric, by run then step."""
    where, params = ("r.study = ? AND", [study]) if study is not None else ("", [])
    return self._frame(
      "SELECT m.run_id, m.step, m.tokens, m.value FROM runs r JOIN metrics m ON m.run_id = r.run_id "
      f"WHERE {where} m.split = ? AND m.name = ? ORDER BY m.run_id, m.step",
      params + [split, name],
    )

  def final_losses(
    self, study: str | None = None, loss: str = "final_eval", window: int | float = DEFAULT_WINDOW
  ) -> pd.DataFrame:
    """Every runs column plus "loss" for each finished run that has the chosen final loss.

    loss="final_eval": the eval loss at the run's last eval step, which must not precede its last
    train step. loss="smoothed_train": the mean train loss over the run's final logged steps, the
    smoothed final training loss of Hoffmann et al. 2022 and Krajewski et al. 2024 (PAPERS.md §0.2);
    `window` is a count of logged records (int) or a fraction of the run's tokens (float), see
    `window_mean`. Only runs in state "done" qualify, and never a WSD trunk (a branch is a run like any
    other). The runs left out, with the reason, are in `frame.attrs["left_out"]` (run_id → reason).
    """
    if loss not in LOSSES:
      raise ValueError(f"loss: unknown {loss!r}; expected one of {', '.join(LOSSES)}")
    check_window(window)
    runs = self.runs(study)
    split = "eval" if loss == "final_eval" else "train"
    series = _by_run(self._series(study, split, "loss"))
    last_train = {}
    if loss == "final_eval":
      last_train = dict(self._last_steps(study, "train", "loss"))
    values, left_out = {}, {}
    for run_id, state, error, role in zip(runs["run_id"], runs["state"], runs["error"], runs["role"]):
      s = series.get(run_id)
      if role == "trunk":
        left_out[run_id] = TRUNK_LEFT_OUT
      elif state != "done":
        left_out[run_id] = f"state is {state}" + (f" ({error})" if isinstance(error, str) and error else "")
      elif s is None:
        left_out[run_id] = f"no {split} loss logged"
      elif loss == "final_eval" and s["step"][-1] < last_train.get(run_id, -1):
        left_out[run_id] = f"last eval at step {s['step'][-1]} precedes the last train step {last_train[run_id]}"
      else:
        end = len(s["step"]) - 1
        value = s["value"][end] if loss == "final_eval" else window_mean(s["tokens"], s["value"], end, window)
        if math.isfinite(value):
          values[run_id] = value
        else:
          left_out[run_id] = f"final {split} loss is {value}"
    out = runs[runs["run_id"].isin(values)].reset_index(drop=True)
    out["loss"] = out["run_id"].map(values).astype(float)
    out.attrs["left_out"] = left_out
    out.attrs["trunks"] = sum(reason == TRUNK_LEFT_OUT for reason in left_out.values())
    return out

  def _last_steps(self, study: str | None, split: str, name: str) -> list[tuple[str, int]]:
    where, params = ("r.study = ? AND", [study]) if study is not None else ("", [])
    return self._db.execute(
      "SELECT m.run_id, MAX(m.step) FROM runs r JOIN metrics m ON m.run_id = r.run_id "
      f"WHERE {where} m.split = ? AND m.name = ? GROUP BY m.run_id",
      params + [split, name],
    ).fetchall()

  def loss_at_tokens(
    self, study: str, tokens: Sequence[float], split: str = "train", window: int | float = DEFAULT_WINDOW
  ) -> pd.DataFrame:
    """Long frame run_id, tokens, loss, step: each run's loss on reaching each token count.

    The loss at T is the `window` mean (see `window_mean`) ending at the last record logged at or
    below T tokens; `step` is that record's step. A run counts as reaching T once it has logged a
    record at or beyond T; pairs it has not reached are left out, listed in
    `frame.attrs["left_out"]` ((run_id, T) → reason).

    `mid_run` is True for a loss taken before the run's schedule ended: before its last token, or
    anywhere in a WSD trunk (which never cools down). Such a loss is not the final loss of a run of
    budget T (a cosine run at T has not decayed); `frame.attrs["mid_run"]` counts them.
    """
    check_window(window)
    targets = [float(t) for t in tokens]
    rows, left_out = [], {}
    runs = self.runs(study)
    ends = dict(zip(runs["run_id"], runs["tokens"]))
    trunks = set(runs["run_id"][runs["role"] == "trunk"])
    for run_id, s in _by_run(self._series(study, split, "loss")).items():
      for target in targets:
        end = int(np.searchsorted(s["tokens"], target, side="right")) - 1
        if s["tokens"][-1] < target:
          left_out[(run_id, target)] = f"reached only {s['tokens'][-1]:.4g} tokens"
        elif end < 0:
          left_out[(run_id, target)] = f"no {split} loss logged at or below {target:.4g} tokens"
        else:
          mid_run = run_id in trunks or s["tokens"][end] < ends.get(run_id, 0)
          rows.append((run_id, target, window_mean(s["tokens"], s["value"], end, window), int(s["step"][end]), mid_run))
    import pandas as pd

    out = pd.DataFrame(rows, columns=["run_id", "tokens", "loss", "step", "mid_run"])
    out.attrs["left_out"] = left_out
    out.attrs["mid_run"] = int(out["mid_run"].sum())
    return out

  def curves(self, study: str, split: str | None = None, names: Sequence[str] | None = ("loss",)) -> pd.DataFrame:
    """Long frame run_id, split, step, tokens, flops, name, value; names=None → every metric."""
    where, params = ["r.study = ?"], [study]
    if split is not None:
      where.append("m.split = ?")
      params.append(split)
    if names is not None:
      names = [names] if isinstance(names, str) else list(names)
      where.append(f"m.name IN ({', '.join('?' * len(names))})")
      params += names
    return self._frame(
      "SELECT m.run_id, m.split, m.step, m.tokens, m.flops, m.name, m.value FROM runs r "
      f"JOIN metrics m ON m.run_id = r.run_id WHERE {' AND '.join(where)} ORDER BY m.run_id, m.split, m.name, m.step",
      params,
    )

  def metric_at_end(self, study: str, name: str, split: str = "downstream") -> pd.DataFrame:
    """run_id, step, tokens, flops, value of metric `name` at each run's newest step that logged it."""
    # With a single MAX() aggregate SQLite takes the bare columns from the row holding the maximum.
    return self._frame(
      "SELECT m.run_id, MAX(m.step) AS step, m.tokens, m.flops, m.value FROM runs r "
      "JOIN metrics m ON m.run_id = r.run_id WHERE r.study = ? AND m.split = ? AND m.name = ? "
      "GROUP BY m.run_id ORDER BY m.run_id",
      [study, split, name],
    )


def open(root: str | os.PathLike, *, create: bool = True) -> Store:
  """The store at `<root>/results.sqlite`."""
  return Store(default_path(root), create=create)


def check_window(window: int | float) -> None:
  """A window is a positive count of records (int) or a fraction of tokens in (0, 1] (float)."""
  if isinstance(window, bool) or not isinstance(window, (int, float)):
    raise ValueError(f"window: expected a record count or a fraction, got {window!r}")
  if isinstance(window, int) and window < 1:
    raise ValueError(f"window: a record count must be at least 1, got {window}")
  if isinstance(window, float) and not 0 < window <= 1:
    raise ValueError(f"window: a fraction must lie in (0, 1], got {window}")


def parse_window(text: str) -> int | float:
  """A window from the command line: "20" → the last 20 records, "0.01" → the final 1% of tokens."""
  try:
    window = int(text)
  except ValueError:
    try:
      window = float(text)
    except ValueError:
      raise ValueError(f"window: expected a record count or a fraction, got {text!r}") from None
  check_window(window)
  return window


def window_mean(tokens: np.ndarray, values: np.ndarray, end: int, window: int | float) -> float:
  """Mean of values[..end] over the window that ends at record `end`.

  An int window takes the last `window` records; a float window w takes the records logged after
  (1 − w)·tokens[end] tokens. The window always holds record `end` itself.
  """
  if isinstance(window, int):
    start = max(end + 1 - window, 0)
  else:
    start = min(int(np.searchsorted(tokens[: end + 1], (1 - window) * tokens[end], side="right")), end)
  return float(np.mean(values[start : end + 1]))


def _by_run(frame: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
  """A long run_id/step/tokens/value frame (sorted by run, step) as per-run numpy arrays."""
  out = {}
  if frame.empty:
    return out
  run_ids = frame["run_id"].to_numpy()
  starts = np.flatnonzero(np.r_[True, run_ids[1:] != run_ids[:-1]])
  ends = np.r_[starts[1:], len(run_ids)]
  step = frame["step"].to_numpy()
  tokens = frame["tokens"].to_numpy(dtype=float, na_value=np.nan)
  value = frame["value"].to_numpy(dtype=float, na_value=np.nan)
  for a, b in zip(starts, ends):
    out[run_ids[a]] = {"step": step[a:b], "tokens": tokens[a:b], "value": value[a:b]}
  return out
