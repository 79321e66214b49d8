"""The `mixlaws` command: subcommands parse their arguments and call library functions."""

from __future__ import annotations

import json
import sys

import click

from mixlaws import config as config_lib


def _fail(error: Exception) -> None:
  """One line on stderr and exit 2: the error names the field or file and the reason."""
  click.echo(f"error: {error}", err=True)
  sys.exit(2)


def config_options(fn):
  """--config FILE and repeatable -o section.field=value, shared by every config-taking command."""
  fn = click.option(
    "-o",
    "--override",
    "overrides",
    multiple=True,
    metavar="SECTION.FIELD=VALUE",
    help="Override one config field, type-checked against its declaration (repeatable).",
  )(fn)
  fn = click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="Config file: a Python file with get_config(), a config JSON, or a run dir.",
  )(fn)
  return fn


def load_config(config_path: str | None, overrides: tuple[str, ...]) -> config_lib.Config:
  base = config_lib.load_file(config_path) if config_path else config_lib.base_config()
  return config_lib.resolve(config_lib.apply_overrides(base, overrides))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
  """mixlaws: measure scaling laws of dense and Mixture-of-Experts language models."""


@main.group("config")
def config_group() -> None:
  """Inspect run configs."""


@config_group.command("show")
@config_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def config_show(config_path, overrides, fmt) -> None:
  """Print the resolved config (derived fields filled, every value validated)."""
  try:
    cfg = load_config(config_path, overrides)
  except ValueError as e:
    _fail(e)
  if fmt == "json":
    click.echo(json.dumps(cfg.to_dict(), indent=2))
    return
  for section, fields in cfg.to_dict().items():
    click.echo(f"{section}:")
    for name, value in fields.items():
      click.echo(f"  {name}: {value!r}")


@main.command("count")
@config_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def count(config_path, overrides, fmt) -> None:
  """Print parameter counts by component and the N, N_act and FLOPs under every convention."""
  from mixlaws import console, counting

  try:
    cfg = load_config(config_path, overrides)
  except ValueError as e:
    _fail(e)
  counts = counting.run_counts(cfg)
  if fmt == "json":
    click.echo(json.dumps(counts.to_dict(), indent=2))
    return
  p = counts.params
  rows = [
    [name, f"{int(value):,}", console.human(value)]
    for name, value in (
      ("embedding", p.embedding),
      ("unembedding", p.unembedding),
      ("attention", p.attention),
      ("ffn / experts", p.ffn),
      ("router", p.router),
      ("norms", p.norms),
      ("total", p.total),
      ("active", p.active),
      ("non-embedding", p.non_embedding),
      ("active non-embedding", p.active_non_embedding),
    )
  ]
  console.print_table("parameters", ["component", "count", ""], rows)
  rows = [
    [
      c.convention,
      console.human(c.params),
      console.human(c.active_params),
      f"{c.flops_per_token:.4g}",
      f"{counts.flops(c.convention):.4g}",
    ]
    for c in counts.conventions.values()
  ]
  console.print_table(
    f"conventions ({console.human(counts.tokens)} tokens, {counts.steps:,} steps)",
    ["convention", "N", "N_act", "FLOPs/token", "training FLOPs"],
    rows,
  )


def distributed_options(fn):
  """Where this process sits in a multi-process run; deployment, so not part of the run's config."""
  fn = click.option("--process-id", type=int, default=None, help="This process's index in a multi-process run.")(fn)
  fn = click.option("--num-processes", type=int, default=None, help="Processes in a multi-process run.")(fn)
  fn = click.option("--coordinator", default=None, metavar="HOST:PORT", help="Process 0's address.")(fn)
  return fn


def with_distributed(cfg, coordinator, num_processes, process_id):
  """The config with its distributed section replaced by command-line values, validated."""
  import dataclasses

  given = {"coordinator_address": coordinator, "num_processes": num_processes, "process_id": process_id}
  given = {k: v for k, v in given.items() if v is not None}
  if not given:
    return cfg
  values = cfg.to_dict()
  values["distributed"].update(given)
  return dataclasses.replace(cfg, distributed=config_lib.resolve(values).distributed)


EXIT_CODES = {"done": 0, "failed": 1, "preempted": 75}  # 75 = EX_TEMPFAIL: rerun the same command to resume


@main.command("train")
@click.argument("target", metavar="RUN_DIR_OR_CONFIG")
@click.option("-o", "--override", "overrides", multiple=True, metavar="SECTION.FIELD=VALUE",
              help="Override one config field (only when TARGET is a config file).")  # fmt: skip
@click.option("--root", default="./runs", show_default=True, help="Run root for a config file's run dir.")
@click.option("--quiet", is_flag=True, help="No parameter table or progress bar.")
@distributed_options
def train_command(target, overrides, root, quiet, coordinator, num_processes, process_id) -> None:
  """Train one run: a run dir (resumes from its latest checkpoint) or a config file (new run dir)."""
  import os

  from mixlaws import train

  try:
    is_run_dir = os.path.isdir(target)
    if is_run_dir and overrides:
      raise ValueError(f"{target}: a run dir's config is fixed; override a config file instead")
    cfg = config_lib.resolve(config_lib.apply_overrides(config_lib.load_file(target), overrides))
    cfg = with_distributed(cfg, coordinator, num_processes, process_id)
    run_dir = target if is_run_dir else os.path.join(root, "adhoc", f"adhoc-{config_lib.config_hash(cfg)[:8]}")
    if not is_run_dir:
      click.echo(f"run dir: {run_dir}")
    state = train.train_claimed(cfg, run_dir, progress=not quiet)
  except ValueError as e:
    _fail(e)
  click.echo(f"{run_dir}: {state}")
  sys.exit(EXIT_CODES[state])


@main.command("preflight")
@click.argument("config_path", metavar="RUN_DIR_OR_CONFIG")
@click.option("-o", "--override", "overrides", multiple=True, metavar="SECTION.FIELD=VALUE",
              help="Override one config field (repeatable).")  # fmt: skip
@click.option("--topology", help="TPU topology to compile for, e.g. v5p:4x4x4 (needs the tpu extra, no TPU).")
@click.option("--devices", "n_devices", type=int, help="Compile for this many local devices instead.")
def preflight_command(config_path, overrides, topology, n_devices) -> None:
  """Compile the train step ahead of time for a target and check memory per device; exit 1 if it does not fit."""
  from mixlaws import preflight

  try:
    if topology and n_devices:
      raise ValueError("--topology and --devices: give one target, not both")
    cfg = config_lib.resolve(config_lib.apply_overrides(config_lib.load_file(config_path), overrides))
    verdict = preflight.preflight(cfg, topology=topology, n_devices=n_devices)
  except ValueError as e:
    _fail(e)
  click.echo(verdict.reason)
  sys.exit(0 if verdict.fits else 1)


def store_options(fn):
  """--root and --store, shared by the commands that read or write the results store."""
  fn = click.option("--store", "store_path", metavar="PATH", help="Results store [default: ROOT/results.sqlite].")(fn)
  fn = click.option("--root", default="./runs", show_default=True, help="Run root (local or gs://).")(fn)
  return fn


def _open_store(root: str, store_path: str | None):
  from mixlaws import store

  return store.Store(store_path or store.default_path(root), create=False)


@main.command("collect")
@click.argument("study")
@store_options
@click.option("--watch", "every", type=float, metavar="SECONDS", help="Keep collecting every SECONDS until Ctrl-C.")
def collect_command(study, root, store_path, every) -> None:
  """Ingest a study's run dirs (config, status, metric chunks) into the results store; idempotent."""
  from mixlaws import collect

  def show(report) -> None:
    for warning in report.warnings:
      click.echo(f"warning: {warning}", err=True)
    for warning in report.earlier_warnings:
      click.echo(f"warning (earlier collect): {warning}", err=True)
    click.echo(report.summary())

  try:
    if every is None:
      show(collect.collect(root, study, store_path))
    else:
      collect.watch(root, study, every, store_path, on_report=show)
  except ValueError as e:
    _fail(e)
  except KeyboardInterrupt:
    pass


@main.command("export")
@click.argument("study")
@store_options
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "md", "latex"]),
              help="Table format [default: from --out's suffix, else md].")  # fmt: skip
@click.option("--columns", multiple=True, metavar="NAME[,NAME]",
              help="Add runs columns or metrics at each run's end, e.g. lr,line_end/acc,eval:loss (repeatable).")  # fmt: skip
@click.option("--out", metavar="PATH", help="Write the table here instead of printing it (needed for parquet).")
@click.option("--convention", type=click.Choice(config_lib.FLOPS_CONVENTIONS), default="chinchilla", show_default=True,
              help="Counting convention of the FLOPs column.")  # fmt: skip
@click.option("--loss", type=click.Choice(["final_eval", "smoothed_train"]), default="final_eval", show_default=True)
@click.option("--window", default="0.01", show_default=True,
              help="smoothed_train: the last N logged steps (integer) or the final fraction of tokens (float).")  # fmt: skip
def export_command(study, root, store_path, fmt, columns, out, convention, loss, window) -> None:
  """Write the study's loss table: one row per run, sorted and formatted as papers publish them."""
  from mixlaws import export, store

  try:
    names = tuple(name.strip() for item in columns for name in item.split(",") if name.strip())
    with _open_store(root, store_path) as st:
      table = export.loss_table(
        st, study, convention=convention, loss=loss, window=store.parse_window(window), columns=names
      )
    text = export.write(table, export.format_for(fmt, out), out)
  except ValueError as e:
    _fail(e)
  if text is not None:
    click.echo(text, nl=False)
  left_out = table.attrs["left_out"]
  if left_out:
    run_id, reason = next(iter(left_out.items()))
    click.echo(f"note: {len(left_out)} run(s) without a {loss} loss, e.g. {run_id}: {reason}", err=True)


@main.command("curves")
@click.argument("study")
@store_options
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]),
              help="[default: from --out's suffix, else csv]")  # fmt: skip
@click.option("--out", metavar="PATH", help="Write here instead of printing (needed for parquet).")
@click.option("--split", help="Only this split: train, eval or downstream.")
@click.option("--names", default="loss", show_default=True, help="Comma-separated metric names, or 'all'.")
def curves_command(study, root, store_path, fmt, out, split, names) -> None:
  """Export full metric curves (run_id, split, step, tokens, flops, name, value), long format."""
  from mixlaws import export

  try:
    fmt = export.format_for(fmt, out, default="csv")
    if fmt not in ("csv", "parquet"):
      raise ValueError(f"{out}: curves are written as csv or parquet, not {fmt}")
    with _open_store(root, store_path) as st:
      if study not in st.studies():
        raise ValueError(f"{study}: no runs in the results store {st.path}; run `mixlaws collect {study}` first")
      frame = st.curves(study, split=split, names=None if names == "all" else names.split(","))
    text = export.write(frame, fmt, out)
  except ValueError as e:
    _fail(e)
  if text is not None:
    click.echo(text, nl=False)


@main.group("data")
def data_group() -> None:
  """Prepare and inspect datasets."""


@data_group.command("prepare")
@config_options
def data_prepare(config_path, overrides) -> None:
  """Prepare the configured dataset once: TFDS files and the token cache of both splits."""
  from mixlaws import console, data

  try:
    cfg = load_config(config_path, overrides)
    streams = data.prepare(cfg.data, data.tokenizer(cfg.data))
  except ValueError as e:
    _fail(e)
  width = cfg.model.seq_len + 1
  rows = [
    [s.name, f"{s.n_documents:,}", f"{len(s.tokens):,}", f"{-(-len(s.tokens) // width):,}", s.path]
    for s in streams.values()
  ]
  console.print_table("prepared", ["split", "documents", "tokens", f"windows of {width}", "token cache"], rows)


@main.group("tokenizer")
def tokenizer_group() -> None:
  """Train tokenizers."""


@tokenizer_group.command("train")
@config_options
@click.option("--out", "output", required=True, metavar="PATH", help="Where to write the .model file (local or gs://).")
@click.option("--vocab-size", type=int, default=8192, show_default=True, help="Pieces in the vocabulary.")
@click.option("--model-type", type=click.Choice(["bpe", "unigram"]), default="bpe", show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="Trainer threads.")
def tokenizer_train(config_path, overrides, output, vocab_size, model_type, threads) -> None:
  """Train a SentencePiece model on the train split of the configured dataset."""
  from mixlaws import data

  try:
    cfg = load_config(config_path, overrides)
    tok = data.train_on_dataset(cfg.data, output, vocab_size, model_type, threads)
  except ValueError as e:
    _fail(e)
  click.echo(f"wrote {output} ({tok.vocab_size} pieces); train with -o data.tokenizer=sentencepiece")
  click.echo(f"  -o data.tokenizer_path={output} -o model.vocab_size={tok.vocab_size}")


@main.command("studies")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def studies_command(fmt) -> None:
  """List the studies in experiments/ (and their variants) with run counts and total training FLOPs."""
  from mixlaws import console, registry

  try:
    rows = registry.summary()
  except ValueError as e:
    _fail(e)
  if fmt == "json":
    click.echo(json.dumps(rows, indent=2))
    return
  table = [[r["study"], str(r["runs"]), f"{r['flops']:.3g}", r["description"]] for r in rows]
  console.print_table("studies (FLOPs: chinchilla convention)", ["study", "runs", "FLOPs", "description"], table)


PLAN_COLUMNS = ("run_id", "d_model", "n_layers", "E", "G", "top_k", "router", "params_total", "params_active",
                "params_non_embedding", "tokens", "steps", "flops")  # fmt: skip


PLAN_PREFLIGHT_COLUMNS = ("mesh", "args_gib", "temp_gib", "memory_gib", "hbm_gib", "fits")


def _plan_cell(column: str, value) -> str:
  """A plan value as the table shows it: counts with K/M/B suffixes, short router names."""
  from mixlaws import console, registry

  if column in ("params_total", "params_active", "params_non_embedding", "tokens"):
    return console.human(value)
  if column == "flops":
    return f"{value:.3g}"
  if column == "router":
    return registry.ROUTER_CODES.get(value, value)
  if column == "fits":
    return "yes" if value else "NO"
  if value is None:
    return "-"
  if column == "lr":
    return f"{value:.3g}"
  return str(value)


@main.command("plan")
@click.argument("study")
@click.option("--variant", default=None, help="A variant of the study, e.g. tiny.")
@click.option("--filter", "filter_text", default=None, metavar="EXPR",
              help="Keep runs where every clause holds, e.g. 'G>=4,tokens<=33B,router=switch'.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--accelerator", default="v5p", show_default=True,
              help="Chip for chip-hours: v4, v5e, v5p, v6e, H100, H200, or cpu (peak measured here).")  # fmt: skip
@click.option("--mfu", type=float, default=0.4, show_default=True, help="Assumed model FLOPs utilisation.")
@click.option("--convention", type=click.Choice(config_lib.FLOPS_CONVENTIONS), default="chinchilla",
              show_default=True, help="FLOPs convention of the flops column and the totals.")  # fmt: skip
@click.option("--preflight", "preflight_target", default=None, metavar="TOPOLOGY",
              help="Pick a mesh per run for TOPOLOGY (v5p:4x4x4, v5p-128, local[:N], or 'declared': each run's "
                   "own slice), compile each distinct shape once, and add its memory per device and verdict.")  # fmt: skip
@click.option("--max-compiles", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --preflight: layouts compiled per run shape, best estimate first, until one fits.")  # fmt: skip
def plan_command(
  study, variant, filter_text, fmt, accelerator, mfu, convention, preflight_target, max_compiles
) -> None:
  """One row per run of STUDY (id, shape, E, G, router, parameters, tokens, steps, FLOPs) and the totals."""
  import csv

  from mixlaws import console, registry

  try:
    cost = registry.Cost.of(accelerator, mfu)
    specs = registry.expand(study, variant, filter_text)
    rows = [spec.row(convention) for spec in specs]
    columns = PLAN_COLUMNS
    # A study that varies the learning rate or batch size (an lr x batch grid) shows both.
    if len({s.config.train.lr for s in specs}) > 1 or len({s.config.train.batch_size for s in specs}) > 1:
      for row, spec in zip(rows, specs, strict=True):
        row["lr"], row["batch_size"] = spec.config.train.lr, spec.config.train.batch_size
      columns = (*PLAN_COLUMNS, "lr", "batch_size")
    if preflight_target:
      from mixlaws import planner

      plans = planner.plan_specs(specs, preflight_target, max_compiles=max_compiles)
      for row, plan in zip(rows, plans, strict=True):
        row.update(planner.row(plan))
      columns = (*PLAN_COLUMNS, *PLAN_PREFLIGHT_COLUMNS)
  except ValueError as e:
    _fail(e)
  total = registry.totals(specs, cost, convention)
  summary = (
    f"{total['runs']} runs, {total['flops']:.3g} training FLOPs ({convention}), "
    f"{total['chip_hours']:.3g} chip-hours on {accelerator} ({cost.peak_flops:.3g} FLOP/s) at {mfu:.0%} MFU"
  )
  evaluation = registry.load(study, variant).evaluation
  if evaluation is not None:
    total["eval_flops"] = registry.eval_flops(specs, evaluation, convention)
    total["eval_chip_hours"] = cost.chip_hours(total["eval_flops"])
    summary += (
      f"; evaluation ({', '.join(t for t, _, _ in evaluation.tasks)} at {evaluation.checkpoints} checkpoint(s) per "
      f"run): {total['eval_flops']:.3g} FLOPs, {total['eval_chip_hours']:.3g} chip-hours"
    )
  branching = registry.branching_summary(specs, convention)
  if branching is not None:
    summary += "\n" + registry.branching_text(branching)
  if fmt == "json":
    plan = {"study": study, "variant": variant, "filter": filter_text, "runs": rows, "totals": total}
    if branching is not None:
      plan["branching"] = branching
    click.echo(json.dumps(plan, indent=2))
  elif fmt == "csv":
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    click.echo(summary, err=True)
  else:
    table = [[_plan_cell(c, r[c]) for c in columns] for r in rows]
    headers = ["run id", "d", "L", "E", "G", "k", "router", "N", "N_act", "N_non-emb", "D", "steps", "FLOPs"]
    headers += ["lr", "batch"] if "lr" in columns else []
    headers += ["mesh", "args GiB", "temp GiB", "GiB/device", "HBM GiB", "fits"] if preflight_target else []
    console.print_table(study if variant is None else f"{study} ({variant})", headers, table)
    click.echo(summary)
    for r in rows if preflight_target else []:
      if not r["fits"]:
        bigger = f"; the smallest slice that would fit: {r['smallest_fitting']}" if r["smallest_fitting"] else ""
        click.echo(f"{r['run_id']} does not fit {r['slice']} with any mesh tried{bigger}")


@main.group("bench")
def bench_group() -> None:
  """Benchmarks, each reporting ratios measured inside one process."""


def _write_bench(name: str, report: dict, out_dir: str, markdown: str | None = None) -> None:
  """Writes <out_dir>/<name>.json and .md, prints the Markdown and where both went."""
  from mixlaws import bench

  json_path, md_path = bench.write_report(name, report, out_dir, markdown=markdown)
  click.echo(markdown if markdown is not None else bench.to_markdown(name, report))
  click.echo(f"wrote {json_path} and {md_path}")


@bench_group.command("data")
@config_options
@click.option("--batch-size", type=int, default=4, show_default=True, help="Sequences per batch.")
@click.option("--batches", type=int, default=200, show_default=True, help="Pipeline batches per timing.")
@click.option("--out", "out_dir", default="bench", show_default=True, help="Directory for data.json and data.md.")
def bench_data(config_path, overrides, batch_size, batches, out_dir) -> None:
  """Pipeline tokens/s against the tokens/s a ~20M dense model trains at (target: >= 20x)."""
  from mixlaws.bench import data as bench_data_lib

  try:
    # The benchmark's model first; the command line's overrides may change it.
    cfg = load_config(config_path, (*bench_data_lib.MODEL_OVERRIDES, *overrides))
    report = bench_data_lib.run(cfg, batch_size=batch_size, batches=batches)
  except ValueError as e:
    _fail(e)
  _write_bench("data", report, out_dir)


@bench_group.command("branching")
@click.option("--out", "out_dir", default="bench", show_default=True, help="Directory for branching.json and .md.")
def bench_branching(out_dir) -> None:
  """Training FLOPs of WSD cooldown branches ÷ one run per (N, D) point (target on ludziejewski2025: <= 0.35)."""
  from mixlaws.bench import branching

  _write_bench("branching", branching.run(), out_dir)


@bench_group.command("collect")
@click.option("--runs", type=int, default=300, show_default=True, help="Run dirs in the synthetic study.")
@click.option("--steps", type=int, default=2000, show_default=True, help="Logged steps per run (6 scalars each).")
@click.option("--chunk-steps", type=int, default=200, show_default=True, help="Steps per metrics chunk file.")
@click.option("--repeats", type=int, default=2, show_default=True, help="Timings per case; the fastest is kept.")
@click.option("--work-dir", help="Where to write the synthetic study [default: the system temp dir].")
@click.option("--out", "out_dir", default="bench", show_default=True, help="Directory for collect.json and collect.md.")
def bench_collect(runs, steps, chunk_steps, repeats, work_dir, out_dir) -> None:
  """First collect of 3.6M values (target < 30 s) and a collect with nothing new (< 2 s)."""
  from mixlaws.bench import collect as bench_collect_lib

  if min(runs, steps, chunk_steps, repeats) < 1:
    _fail(ValueError("--runs, --steps, --chunk-steps and --repeats must be positive"))
  report = bench_collect_lib.run(runs=runs, steps=steps, chunk_steps=chunk_steps, repeats=repeats, work_dir=work_dir)
  _write_bench("collect", report, out_dir)


@bench_group.command("model")
@config_options
@click.option("--rounds", type=int, default=3, show_default=True, help="Timed steps per case; the fastest is kept.")
@click.option("--only", default="", help="Run the dense case and the cases whose name contains this text.")
@click.option("--out", "out_dir", default="bench", show_default=True, help="Directory for model.json and model.md.")
def bench_model(config_path, overrides, rounds, only, out_dir) -> None:
  """Forward+backward tokens/s and FLOP/s vs the matmul peak: dense, each router x dispatch, MoE over G."""
  from mixlaws.bench import model as bench_model_lib

  if rounds < 1:
    _fail(ValueError("--rounds must be positive"))
  try:
    # The benchmark's model first; the command line's overrides may change it. Left unresolved so
    # each case derives its own top_k.
    base = config_lib.load_file(config_path) if config_path else config_lib.base_config()
    base = config_lib.apply_overrides(base, (*bench_model_lib.MODEL_OVERRIDES, *overrides))
    config_lib.resolve(base)
    report = bench_model_lib.run(base, rounds=rounds, only=only, log=lambda line: click.echo(line, err=True))
  except ValueError as e:
    _fail(e)
  _write_bench("model", report, out_dir)


@bench_group.command("select")
@click.option("--tasks", "task_names", default=",".join(("farseer", "data_con", "vocab", "parallel", "lr_bsz",
              "sparsity")), show_default=True, help="ScaleBench tasks shipped with mixlaws.")  # fmt: skip
@click.option("--task", "task_dir", metavar="DIR", help="Any folder with train.parquet and test.parquet instead.")
@click.option("--law", "law_name", help="--task: the law to fit (e.g. farseer, chinchilla).")
@click.option(
  "--map", "mapping", default="", metavar="NAME=COL,...", help="--task: law columns, e.g. N=N,D=D,loss=loss."
)
@click.option("--cost", default="", metavar="EXPR", help="--task: cost of a run, e.g. 6*N*D (numbers and columns).")
@click.option("--seeds", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--krajewski-seeds", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also the simulated krajewski2024 sweep (G and N at 1e21 from 25% of its FLOPs), this many seeds.")  # fmt: skip
@click.option("--out", "out_dir", default="bench", show_default=True, help="Directory for select.json and select.md.")
def bench_select(task_names, task_dir, law_name, mapping, cost, seeds, krajewski_seeds, out_dir) -> None:
  """Target-region R² at 1/5/10% of the pool's cost: variance-per-FLOP selection vs random and cheapest-first."""
  import os

  from mixlaws.bench import select
  from mixlaws.fit import study as fit_study

  try:
    if task_dir:
      if not (law_name and mapping and cost):
        raise ValueError("--task: needs --law, --map and --cost")
      tasks = [select.Task(os.path.basename(os.path.normpath(task_dir)), "", law_name, fit_study.parse_map(mapping),
                           cost)]  # fmt: skip
    else:
      names = [t for t in task_names.split(",") if t]
      unknown = [t for t in names if t not in select.TASKS]
      if unknown:
        raise ValueError(f"--tasks: unknown {', '.join(unknown)}; expected some of {', '.join(select.TASKS)}")
      tasks = [select.TASKS[t] for t in names]
    log = lambda line: click.echo(line, err=True)  # noqa: E731
    report = select.run(tasks, seeds=seeds, folder=task_dir, log=log)
    if krajewski_seeds:
      report["krajewski2024"] = select.krajewski_check(seeds=krajewski_seeds, log=log)
  except ValueError as e:
    _fail(e)
  _write_bench("select", report, out_dir, markdown=select.markdown(report))


BACKENDS = ("local", "local-multihost", "tpu-vm", "xpk")


@main.command("run")
@click.argument("study")
@click.option("--variant", default=None, help="A variant of the study, e.g. tiny.")
@click.option("--filter", "filter_text", default=None, metavar="EXPR", help="Only runs where every clause holds.")
@click.option("--backend", type=click.Choice(BACKENDS), default="local", show_default=True)
@click.option("--root", default="./runs", show_default=True, help="Run root (gs://… for tpu-vm and xpk).")
@click.option("--retry-failed", is_flag=True, help="Train failed runs again (otherwise they are skipped).")
@click.option("--stale-after", type=float, default=None, metavar="SECONDS",
              help="A running run whose worker is silent this long is taken over [default: 300].")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Print the commands it would run; run and write nothing.")
@click.option("--workers", type=int, default=1, show_default=True, help="local*: worker processes (or groups).")
@click.option("--no-progress", is_flag=True, help="local*: no live view, only the final summary.")
@click.option("--processes", type=int, default=2, show_default=True, help="local-multihost: processes per worker.")
@click.option("--devices-per-process", type=int, default=None, help="local-multihost: fake CPU devices per process.")
@click.option("--accelerator-type", default=None, help="tpu-vm, xpk: slice type, e.g. v5p-128, v5litepod-16, v6e-8.")
@click.option("--slices", type=int, default=1, show_default=True, help="tpu-vm, xpk: slices working the queue.")
@click.option("--project", default="", help="tpu-vm, xpk: GCP project [default: gcloud's].")
@click.option("--zone", default="", help="tpu-vm, xpk: zone [default: gcloud's compute/zone].")
@click.option("--name", default="", help="tpu-vm, xpk: slice/workload name prefix [default: from the study].")
@click.option(
  "--package", default=None, help="tpu-vm, xpk: pip requirement installing mixlaws[tpu,gcp] ('' = present)."
)
@click.option("--pack-chips", is_flag=True, help="tpu-vm, xpk: one single-chip worker per chip, for small runs.")
@click.option("--poll", type=float, default=30.0, show_default=True, help="tpu-vm, xpk: seconds between looks.")
@click.option("--runtime-version", default="", help="tpu-vm: TPU software version [default: the chip's].")
@click.option("--provisioning", type=click.Choice(["standard", "spot", "reserved"]), default="standard",
              show_default=True, help="tpu-vm: how the slices are provisioned.")  # fmt: skip
@click.option("--cluster", default="", help="xpk: the GKE cluster.")
@click.option("--docker-image", default="python:3.11", show_default=True, help="xpk: the workloads' image.")
@click.option("--max-restarts", type=int, default=10, show_default=True, help="xpk: restarts after preemptions.")
@click.option("--adaptive", is_flag=True, help="local: train what `mixlaws next` proposes, refit, repeat to --budget.")
@click.option("--budget", type=float, help="--adaptive: training FLOPs to spend in all (finished runs count).")
@click.option("--law", "law_name", default="chinchilla", show_default=True, help="--adaptive: the law to fit.")
@click.option("--target", "target_text", default="loss", show_default=True, help="--adaptive: as `mixlaws next`.")
def run_command(study, variant, filter_text, backend, root, retry_failed, stale_after, dry_run, workers, no_progress,
                processes, devices_per_process, accelerator_type, slices, project, zone, name, package, pack_chips,
                poll, runtime_version, provisioning, cluster, docker_image, max_restarts, adaptive, budget, law_name,
                target_text) -> None:  # fmt: skip
  """Queue STUDY's runs under ROOT (once) and start workers on a backend; rerun it after any failure."""
  from mixlaws import registry, sweep
  from mixlaws.launch import common, local, local_multihost, tpu_vm, xpk

  options = common.WorkerOptions(retry_failed, sweep.STALE_AFTER if stale_after is None else stale_after)
  if adaptive:
    _run_adaptive(study, variant, filter_text, backend, root, workers, options, budget, law_name, target_text)
    return
  try:
    specs = registry.expand(study, variant, filter_text)
    if not specs:
      raise ValueError(f"--filter: no run of {study} passes {filter_text!r}")
    label = specs[0].study
    if backend in ("tpu-vm", "xpk") and not accelerator_type:
      raise ValueError(f"--accelerator-type: the {backend} backend needs a slice type, e.g. v5p-128")
    if backend == "tpu-vm":
      cloud = tpu_vm.Options(accelerator_type, slices, project, zone, runtime_version, provisioning, name, package,
                             pack_chips, poll)  # fmt: skip
      checked = tpu_vm.plan(label, root, cloud, options, dry_run=dry_run)
    elif backend == "xpk":
      cloud = xpk.Options(cluster, accelerator_type, slices, project, zone, docker_image, name, package, pack_chips,
                          max_restarts, poll)  # fmt: skip
      checked = xpk.plan(label, root, cloud, options, dry_run=dry_run)
    elif backend == "local":
      commands = local.commands(label, root, workers, options)
    else:
      commands = local_multihost.commands(label, root, processes=processes, workers=workers,
                                          devices_per_process=devices_per_process, options=options)  # fmt: skip
    if dry_run:
      click.echo(
        common.comment(f"queue: {len(specs)} runs under {sweep.study_dir(root, label)} (not written in a dry run)")
      )
    else:
      queued = sweep.enqueue(specs, root, on_error=lambda message: click.echo(f"warning: {message}", err=True))
      click.echo(f"queue: {len(specs)} runs under {sweep.study_dir(root, label)} ({queued['new']} new)")
    if backend == "tpu-vm":
      code = common.execute(tpu_vm.Launcher, checked, label, root, cloud, options, dry_run=dry_run, echo=click.echo)
    elif backend == "xpk":
      code = common.execute(xpk.Launcher, checked, label, root, cloud, options, dry_run=dry_run, echo=click.echo)
    elif dry_run:
      for command in commands:
        click.echo(command.shell())
      code = 0
    else:
      code = local.launch(commands, label, root, options, display=not no_progress, echo=click.echo)
  except ValueError as e:
    _fail(e)
  sys.exit(code)


def _run_adaptive(study, variant, filter_text, backend, root, workers, options, budget, law_name, target_text) -> None:
  """`run --adaptive`: rounds of `next`, each trained by local workers, until the budget is spent."""
  from mixlaws import adaptive, registry, sweep
  from mixlaws.fit import laws
  from mixlaws.launch import local

  def train(chosen) -> None:
    sweep.enqueue(chosen, root)
    code = local.launch(local.commands(label, root, workers, options), label, root, options, display=False,
                        echo=click.echo)  # fmt: skip
    if code:
      raise ValueError(f"--adaptive: the workers exited with {code}; `mixlaws status {label}` shows why")

  try:
    if backend != "local":
      raise ValueError("--adaptive: runs on the local backend")
    if not budget or budget <= 0:
      raise ValueError("--budget: --adaptive needs a positive FLOPs budget")
    specs = registry.expand(study, variant, filter_text)
    if not specs:
      raise ValueError(f"--filter: no run of {study} passes {filter_text!r}")
    label = specs[0].study
    adaptive.run_adaptive(specs, laws.get(law_name), target_text, budget, train, root, echo=click.echo)
  except ValueError as e:
    _fail(e)


@main.command("worker")
@click.argument("study")
@click.option("--root", default="./runs", show_default=True, help="Run root (local or gs://).")
@click.option("--retry-failed", is_flag=True, help="Also take failed runs.")
@click.option("--stale-after", type=float, default=None, metavar="SECONDS",
              help="Take over a running run whose worker is silent this long [default: 300].")  # fmt: skip
@click.option("--quiet", is_flag=True, help="No parameter tables or progress bars.")
@click.option("--tpu-pod", is_flag=True, help="Join the other hosts of this TPU slice (jax.distributed auto-detect).")
@click.option("--pack-chips", type=int, default=0, metavar="N", help="Run N single-chip workers on this TPU host.")
@distributed_options
def worker_command(study, root, retry_failed, stale_after, quiet, tpu_pod, pack_chips, coordinator, num_processes,
                   process_id) -> None:  # fmt: skip
  """Claim and train runs of STUDY's queue until none is left; exit 0, or 75 when stopped by a signal."""
  from mixlaws import sweep

  stale_after = sweep.STALE_AFTER if stale_after is None else stale_after
  try:
    sweep.study_dir(root, study)
    if pack_chips:
      from mixlaws.launch import common, supervise

      options = common.WorkerOptions(retry_failed, stale_after)
      commands = common.packed_commands(common.worker_args(study, root, options), pack_chips)
      codes = supervise.wait(supervise.start(commands), echo=click.echo)
      sys.exit(75 if 75 in codes else 1 if any(codes) else 0)
    distributed = None
    if coordinator or num_processes or process_id is not None:
      base = config_lib.resolve(config_lib.base_config())
      distributed = with_distributed(base, coordinator, num_processes, process_id).distributed
    report = sweep.work(root, study, retry_failed=retry_failed, stale_after=stale_after, progress=not quiet,
                        distributed=distributed, tpu_pod=tpu_pod, log=click.echo)  # fmt: skip
  except ValueError as e:
    _fail(e)
  click.echo(
    f"worker: trained {len(report.trained)} run(s)" + (f"; stopped by {report.stopped_by}" if report.stopped_by else "")
  )
  sys.exit(75 if report.stopped_by else 0)


@main.command("status")
@click.argument("study")
@click.option("--variant", default=None, help="A variant of the study, e.g. tiny.")
@click.option("--root", default="./runs", show_default=True, help="Run root (local or gs://).")
@click.option("--stale-after", type=float, default=None, metavar="SECONDS",
              help="A running run silent this long shows as stale [default: 300].")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def status_command(study, variant, root, stale_after, fmt) -> None:
  """Runs of STUDY per state, and each run's step, attempt and heartbeat age."""
  import dataclasses

  from mixlaws import collect, console, sweep

  label = study if variant is None else f"{study}-{variant}"
  try:
    if not sweep.study_dir(root, label).exists():
      raise ValueError(f"{sweep.study_dir(root, label)}: no runs; `mixlaws run {label}` queues them")
    rows = sweep.scan(root, label, stale_after=sweep.STALE_AFTER if stale_after is None else stale_after)
    skipped = collect.stored_warnings(root, label)
  except ValueError as e:
    _fail(e)
  found = sweep.counts(rows)
  if fmt == "json":
    runs = [dataclasses.asdict(r) for r in rows]
    click.echo(json.dumps({"counts": found, "runs": runs, "skipped_lines": skipped}, indent=2))
    return
  table = [[r.run_id, r.state, f"{r.step}/{r.total_steps}", str(r.attempt), f"{r.heartbeat_age:.0f}s", r.host,
            (r.error or "")[:60]] for r in rows]  # fmt: skip
  console.print_table(f"{label}: " + ", ".join(f"{n} {s}" for s, n in found.items() if n),
                      ["run id", "state", "step", "attempt", "heartbeat", "host", "error"], table)  # fmt: skip
  for r in rows:
    if r.state == "unreadable":
      click.echo(f"warning: {r.error}", err=True)
  for warning in skipped:
    click.echo(f"warning (collected): {warning}", err=True)


@main.command("eval")
@click.argument("target", metavar="STUDY|RUN_DIR")
@click.option("--tasks", "task_text", default="line_end,close_brackets", show_default=True, metavar="TASK[,TASK]",
              help="Embedded: line_end, next_line, close_brackets; TFDS: hellaswag, arc_easy, arc_challenge, piqa, "
                   "winogrande; or a .jsonl file of {context, choices, answer}.")  # fmt: skip
@click.option("--root", default="./runs", show_default=True, help="Run root holding STUDY.")
@click.option("--step", type=int, help="Checkpoint step to evaluate [default: each run's latest].")
@click.option("--shots", type=int, default=0, show_default=True, help="Few-shot demonstrations per example (seeded).")
@click.option("--samples", type=int, default=8, show_default=True,
              help="Generative tasks: completions per problem; pass@k is reported for k up to this.")  # fmt: skip
@click.option("--temperature", type=float, default=0.8, show_default=True, help="Generative tasks: 0 → greedy.")
@click.option("--limit", type=int, default=0, help="Examples per task [default: all; embedded tasks 500 and 200].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds examples, demonstrations and sampling.")
@click.option("--batch-size", type=int, default=0, help="Rows per batch [default: the run's train.batch_size].")
@click.option("--data-dir", default="", help="Where TFDS benchmarks were prepared [default: the run's data dir].")
@click.option("--force", is_flag=True, help="Evaluate again where a done marker exists.")
def eval_command(target, task_text, root, step, shots, samples, temperature, limit, seed, batch_size, data_dir,
                 force) -> None:  # fmt: skip
  """Score checkpoints on downstream tasks into each run dir (split 'downstream'); done (run, task, step)s are skipped."""
  import os

  from mixlaws import evaluation

  def show(result) -> None:
    values = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items() if k != "acc_stderr")
    note = f" ({result.skipped})" if result.skipped else ""
    click.echo(f"{os.path.basename(result.run_dir)} step {result.step} {result.task}: {values}{note}")

  errors, waiting = {}, []
  try:
    specs = evaluation.task_names(task_text)
    options = evaluation.Options(shots=shots, samples=samples, temperature=temperature, limit=limit, seed=seed,
                                 data_dir=data_dir, batch_size=batch_size)  # fmt: skip
    options.validate()
    if os.path.isfile(os.path.join(target, "config.json")):
      evaluation.evaluate_run(target, specs, options, step=step, force=force, on_result=show)
    else:
      _, errors, waiting = evaluation.evaluate_study(
        root, target, specs, options, step=step, force=force, on_result=show,
        on_error=lambda run_dir, error: click.echo(f"error: {run_dir}: {error}", err=True))  # fmt: skip
  except ValueError as e:
    _fail(e)
  if waiting:
    click.echo(f"note: {len(waiting)} run(s) have no checkpoint yet, e.g. {waiting[0]}", err=True)
  sys.exit(1 if errors else 0)


LAW_HELP = (
  "Law: chinchilla, krajewski2024, ludziejewski2025, wang2024, clark2022, compute, downstream_power, "
  "downstream_ceiling, downstream_tpr, gadre2024, gadre2024_error, muennighoff2023, steplaw (optimal lr and "
  "batch size from an lr x batch grid; map lr=…,batch=…); ScaleBench: farseer, data_constrained_floor, vocab_power, "
  "parallel_power, lr_bsz_poly, sparsity_power."
)


@main.command("fit")
@click.argument("study", required=False)
@click.option("--law", "law_name", required=True, help=LAW_HELP)
@click.option("--csv", "csv_path", metavar="FILE", help="Fit points from a CSV instead of a study in the store.")
@click.option("--map", "mapping", metavar="NAME=COL,...", default="",
              help="CSV columns for the law's inputs, e.g. N=params,D=tokens,loss=val_loss (N, N_act, D, C, E, G, U, L).")  # fmt: skip
@click.option("--loss", type=click.Choice(["final_eval", "smoothed_train"]), default="final_eval", show_default=True)
@click.option("--window", default="0.01", show_default=True,
              help="smoothed_train: the last N logged steps (integer) or the final fraction of tokens (float).")  # fmt: skip
@click.option("--convention", type=click.Choice(config_lib.FLOPS_CONVENTIONS),
              help="Counting convention of N and FLOPs [default: the law's own].")  # fmt: skip
@click.option("--bootstrap", type=click.IntRange(min=0), default=0, show_default=True, help="Resamples over points.")
@click.option("--holdout", metavar="EXPR", help="Held-out points: 'lowest:K' or a condition such as 'params > 1e9'.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--starts", type=click.IntRange(min=1), help="Optimise this many starts drawn from the law's grid "
              "[default: all of them].")  # fmt: skip
@click.option("--metric", metavar="TASK/METRIC", help="Fit a downstream accuracy (e.g. line_end/acc) from "
              "`mixlaws eval` instead of the loss; for the downstream_* laws.")  # fmt: skip
@click.option("--chance", type=float, help="--metric: chance accuracy to correct for [default: as evaluated].")
@click.option("--out", metavar="FILE", help="Write the fit as JSON (e.g. fit.json).")
@click.option("--seq-len", type=int, help="steplaw --csv: the batch column counts sequences of this many tokens.")
@store_options
def fit_command(study, law_name, csv_path, mapping, loss, window, convention, bootstrap, holdout, seed, starts,
                metric, chance, out, seq_len, root, store_path) -> None:  # fmt: skip
  """Fit a law to a study's final losses (or a CSV) from every start of its grid; print the coefficients."""
  from mixlaws import console, store
  from mixlaws.fit import laws
  from mixlaws.fit import study as fit_study

  if law_name == "steplaw":
    _fit_steplaw(study, csv_path, mapping, seq_len, loss, window, convention, bootstrap, seed, out, root, store_path)
    return
  try:
    law = laws.get(law_name)
    if metric and (csv_path or law.target != "neg_log_accuracy"):
      raise ValueError("--metric: needs a STUDY and a downstream law (downstream_power, downstream_ceiling, ...)")
    if csv_path:
      if study:
        raise ValueError("give either STUDY or --csv, not both")
      frame = fit_study.read_csv(csv_path, fit_study.parse_map(mapping), law)
      source = csv_path
      if law.target == "neg_log_accuracy":
        frame = fit_study.accuracy_points(frame, chance, fit_study.parse_map(mapping))
        source += "" if chance is None else f" (chance {chance:g})"
      elif chance is not None:
        raise ValueError("--chance: only for the downstream laws (downstream_power, downstream_ceiling, ...)")
    elif study and metric:
      with _open_store(root, store_path) as st:
        frame = fit_study.metric_from_store(st, study, metric, convention or law.convention or "chinchilla", chance)
      source = f"study {study}, {metric} (chance {frame.attrs['chance']:.3g})"
    elif study:
      with _open_store(root, store_path) as st:
        frame = fit_study.from_store(st, study, convention or law.convention or "chinchilla", loss,
                                     store.parse_window(window))  # fmt: skip
      source = f"study {study}"
    else:
      raise ValueError("STUDY or --csv FILE is required")
    report = fit_study.fit_report(law, frame, bootstrap=bootstrap, holdout=holdout, seed=seed, starts=starts)
  except ValueError as e:
    _fail(e)
  result = report["fit"]
  intervals = result["intervals"] or {}
  rows = [[name, f"{value:.6g}", *(f"{v:.4g}" for v in intervals.get(name, ("", "")))] if name in intervals
          else [name, f"{value:.6g}", "", ""] for name, value in result["params"].items()]  # fmt: skip
  ci = f"{100 * result['ci']:g}% " if result["ci"] else ""
  title = f"{law.name} on {result['n_points']} points from {source}"
  console.print_table(title, ["parameter", "value", f"{ci}low", f"{ci}high"], rows)
  click.echo(f"objective {result['objective']:.8g}; {result['n_at_best']} of {result['n_starts']} starts reached it; "
             f"best start stopped at {result['stop']} (max |gradient| {result['grad_max']:.2g})")  # fmt: skip
  if frame.attrs.get("trunks_left_out"):
    click.echo(f"note: {frame.attrs['trunks_left_out']} WSD trunk(s) left out: a trunk's loss comes from mid-run, "
               "before any cooldown; its branches are the points", err=True)  # fmt: skip
  if "holdout" in report:
    h = report["holdout"]
    click.echo(f"held out {h['n_test']} point(s): RMSE {h['rmse']:.4g}, max error {h['max_error']:.4g} "
               f"(train RMSE {h['train_rmse']:.4g})")  # fmt: skip
  if out:
    with open(out, "w") as f:
      json.dump({**report, "source": source}, f, indent=2)
    click.echo(f"wrote {out}")


def _fit_steplaw(study, csv_path, mapping, seq_len, loss, window, convention, bootstrap, seed, out, root,
                 store_path) -> None:  # fmt: skip
  """`mixlaws fit --law steplaw`: the Step Law per family, and dense vs MoE optima side by side."""
  from mixlaws import console, store
  from mixlaws.fit import steplaw
  from mixlaws.fit import study as fit_study

  try:
    if bool(study) == bool(csv_path):
      raise ValueError("give either STUDY or --csv FILE (not both)")
    if csv_path:
      frame = fit_study.steplaw_points(fit_study.read_csv(csv_path, fit_study.parse_map(mapping)), seq_len)
      source = csv_path
    else:
      with _open_store(root, store_path) as st:
        frame = fit_study.steplaw_from_store(st, study, convention or "chinchilla", loss, store.parse_window(window))
      source = f"study {study}"
    report = fit_study.steplaw_report(frame, bootstrap=bootstrap, seed=seed)
  except ValueError as e:
    _fail(e)
  published = steplaw.PUBLISHED["li2025"]
  for family, result in report["fits"].items():
    fit = result["fit"]
    if fit is None:
      click.echo(f"note: {family}: {result['error']}", err=True)
      continue
    std = fit["std"] or {}
    rows = [[name, f"{fit['params'][name]:.4g}", f"{std[name]:.3g}" if std else "", f"{published[name]:.4g}"]
            for name in steplaw.COEFFICIENTS]  # fmt: skip
    title = f"steplaw{'' if family == 'all' else f' ({family})'} on {fit['n_groups']} (N, D) groups from {source}"
    console.print_table(title, ["coefficient", "bootstrap mean" if std else "value", "std", "Li et al. 2025"], rows)
  table = report["families"]
  if table is not None:
    rows = [[f"{r.experts:g}", console.human(r.params), console.human(r.tokens),
             f"{r.lr_star:.3g} [{r.lr_lo:.3g}, {r.lr_hi:.3g}]", f"{console.human(r.batch_star)} "
             f"[{console.human(r.batch_lo)}, {console.human(r.batch_hi)}]", f"{r.loss_star:.4f}"]
            for r in table.itertuples()]  # fmt: skip
    console.print_table("optimal lr and batch (tokens) per family, 95% intervals", ["E", "N", "D", "lr", "batch",
                        "loss"], rows)  # fmt: skip
  if out:
    with open(out, "w") as f:
      json.dump({"law": "steplaw", "source": source, "fit": next((r["fit"] for r in report["fits"].values()
                 if r["fit"]), None), "fits": {str(k): v["fit"] for k, v in report["fits"].items()},
                 "families": None if table is None else table.to_dict("records")}, f, indent=2)  # fmt: skip
    click.echo(f"wrote {out}")


OPTIMAL_HELP = (
  "chinchilla, gadre2024: N, D at --budget; krajewski2024: N, D, G at --budget; ludziejewski2025, wang2024: N_act, "
  "D per E at --budget; clark2022: the best E at --params (fixed D); compute: the budget for a --target loss; "
  "downstream_power, downstream_ceiling, downstream_tpr: the budget for a --target accuracy; steplaw: lr and batch "
  "size at --params, --tokens; ludziejewski_lr: Eq. 8's lr at --params (N_act with embeddings) and --experts. "
  "gadre2024_error and muennighoff2023 have nothing to optimise here."
)


@main.command("next")
@click.argument("study")
@click.option("--variant", default=None, help="A variant of the study, e.g. tiny.")
@click.option("--law", "law_name", required=True, help=LAW_HELP)
@click.option("--target", "target_text", default="loss", show_default=True,
              help="loss (at the largest planned budget), optimal:C (e.g. optimal:1e21) or coef:NAME.")  # fmt: skip
@click.option("-k", "k", type=click.IntRange(min=1), default=4, show_default=True, help="Runs to propose.")
@click.option("--budget", type=float, default=None, help="FLOPs the proposed runs may spend [default: the rest].")
@click.option("--convention", type=click.Choice(config_lib.FLOPS_CONVENTIONS),
              help="Counting convention of N and FLOPs [default: the law's own].")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@store_options
def next_command(study, variant, law_name, target_text, k, budget, convention, seed, fmt, root, store_path) -> None:
  """The next K planned runs of STUDY that most shrink the target's variance per FLOP (Laplace, V-optimal)."""
  import os

  import pandas as pd

  from mixlaws import adaptive, console, registry, store
  from mixlaws.fit import laws
  from mixlaws.fit import study as fit_study

  try:
    law = laws.get(law_name)
    convention = convention or law.convention or "chinchilla"
    specs = registry.expand(study, variant)
    label = specs[0].study
    done = pd.DataFrame({"label": [], "loss": []})  # nothing finished yet
    if os.path.exists(store_path or store.default_path(root)):
      with _open_store(root, store_path) as st:
        if not st.final_losses(label).empty:
          done = fit_study.from_store(st, label, convention, "final_eval", store.parse_window("0.01"))
    frame = adaptive.observe(adaptive.pool(specs, convention), done)
    chosen, summary = adaptive.propose(law, frame, target_text, k, budget, seed=seed)
  except ValueError as e:
    _fail(e)
  if fmt == "json":
    click.echo(json.dumps({"study": label, **summary, "runs": chosen.to_dict(orient="records")}, indent=2))
    return
  why = {"cheapest": "cheapest first (too few runs to fit)", "variance": "target variance per FLOP"}
  shown = lambda v: "—" if v != v else f"{v:.3g}"  # noqa: E731  (NaN: no fit yet)
  rows = [[r.run_id, f"{r.flops:.3g}", why[r.reason], shown(r.variance_after)] for r in chosen.itertuples()]
  console.print_table(f"{label}: next {len(rows)} run(s) for {summary['target']}",
                      ["run id", "FLOPs", "chosen by", "target variance after"], rows)  # fmt: skip
  click.echo(f"{summary['observed']} of {summary['pool']} runs done; target variance now {shown(summary['variance_now'])}; "
             f"proposed FLOPs {summary['flops_chosen']:.3g}")  # fmt: skip


@main.command("optimal")
@click.option("--law", "law_name", required=True, help=OPTIMAL_HELP)
@click.option("--fit", "fit_path", metavar="FILE", help="Coefficients from a fit.json written by `mixlaws fit`.")
@click.option("--published", is_flag=True, help="Use the law's published coefficients.")
@click.option("--coefficients", "coefficient_set", metavar="NAME", help="Which published set [default: the first].")
@click.option("--budget", type=float, help="Training compute in FLOPs, e.g. 1e21.")
@click.option("--params", "n_params", type=float, help="N (steplaw), N_act (clark2022, ludziejewski_lr).")
@click.option("--tokens", type=float, help="Training tokens D (steplaw).")
@click.option("--target", type=float, help="Target loss (compute) or accuracy (downstream_*).")
@click.option("--chance", type=float, default=0.0, show_default=True, help="downstream_*: chance accuracy the fit "
              "corrected for.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--memory", metavar="SIZE", help="Memory cap on weights (+ KV cache), e.g. 80GB (ludziejewski2025).")
@click.option("--kv-tokens", type=float, default=0.0, help="Tokens held in the KV cache (ludziejewski2025).")
@click.option(
  "--inference-tokens", type=float, default=0.0, help="Tokens served, charged 2·N_act each (ludziejewski2025)."
)
@click.option("--experts", default="1,2,4,8,16,32", show_default=True, help="Candidate E (ludziejewski2025).")
@click.option("--expansion-rate", type=int, default=64, show_default=True, help="E of the krajewski2024 law.")
def optimal_command(law_name, fit_path, published, coefficient_set, budget, n_params, tokens, target, chance, fmt,
                    memory, kv_tokens, inference_tokens, experts, expansion_rate) -> None:  # fmt: skip
  """The optimum of a law (compute-optimal N, D, E or G; a budget for a target; lr and batch size), from a fit
  or published coefficients, with intervals from the fit's bootstrap."""
  from mixlaws import console
  from mixlaws.fit import laws
  from mixlaws.fit import study as fit_study

  if law_name not in laws.LAWS and law_name not in ("steplaw", "ludziejewski_lr"):
    _fail(ValueError(f"law: unknown {law_name!r}; expected one of {', '.join(laws.LAWS)}, steplaw, ludziejewski_lr"))
  if law_name in ("steplaw", "ludziejewski_lr") or law_name in fit_study.OPTIMA:
    _optimum(law_name, fit_path, published, coefficient_set, budget, n_params, tokens, target, chance, fmt, experts)
    return
  try:
    if budget is None:
      raise ValueError(f"--budget: the {law_name} law allocates a FLOPs budget; give one, e.g. --budget 1e21")
    law = laws.get(law_name)
    if bool(fit_path) == bool(published):
      raise ValueError("give exactly one of --fit FILE or --published")
    if fit_path:
      result = fit_study.load_fit(fit_path)
      if result.law != law.name:
        raise ValueError(f"--fit: {fit_path} holds a {result.law} fit, not {law.name}")
      params, source = result.params, fit_path
    else:
      if not law.published:
        raise ValueError(f"--published: {law.name} has no published coefficients")
      name = coefficient_set or next(iter(law.published))
      if name not in law.published:
        raise ValueError(f"--coefficients: {law.name} has {', '.join(law.published)}, not {name!r}")
      params, source = law.published[name], f"published {name}"
    if budget <= 0:
      raise ValueError(f"--budget: must be positive, got {budget:g}")
    candidates = tuple(int(e) for e in experts.split(",") if e.strip())
    best, table = fit_study.allocation(
      law, params, budget, memory_bytes=fit_study.parse_bytes(memory) if memory else None, kv_tokens=kv_tokens,
      inference_tokens=inference_tokens, experts=candidates, expansion_rate=expansion_rate)  # fmt: skip
  except ValueError as e:
    _fail(e)
  # N is the total count (Ludziejewski et al.'s law is in N_act, their Eq. 9 gives the total); memory in GB
  rows = [[f"{a.experts:g}", f"{a.granularity}", console.human(a.params if a.params_total is None else a.params_total),
           console.human(a.active_params), console.human(a.tokens), f"{a.loss:.4f}",
           "" if a.memory_bytes is None else f"{a.memory_bytes / 1e9:.2f} GB", "*" if a is best else ""]
          for a in table]  # fmt: skip
  console.print_table(
    f"{law.name} ({source}) at {budget:.3g} FLOPs", ["E", "G", "N", "N_act", "D", "loss", "memory", "best"], rows
  )


def _optimum(law_name, fit_path, published, coefficient_set, budget, n_params, tokens, target, chance, fmt,
             experts) -> None:  # fmt: skip
  """`mixlaws optimal` for the laws beyond allocation(): one table (or JSON) with bootstrap intervals."""
  from mixlaws import console
  from mixlaws.fit import hparams, laws, steplaw
  from mixlaws.fit import study as fit_study

  try:
    if bool(fit_path) == bool(published):
      raise ValueError("give exactly one of --fit FILE or --published")
    candidates = tuple(float(e) for e in experts.split(",") if e.strip())
    if law_name == "ludziejewski_lr":
      if fit_path or n_params is None:
        raise ValueError("ludziejewski_lr: Eq. 8 is a published predictor; give --published and --params N_act")
      out = [{"experts": e, "lr": hparams.ludziejewski_lr(n_params, e)} for e in candidates]
      out = out[0] if len(out) == 1 else out
    elif law_name == "steplaw":
      if n_params is None or tokens is None:
        raise ValueError("--params and --tokens: the steplaw law needs both (N non-embedding, D tokens)")
      result = fit_study.load_steplaw_fit(fit_path) if fit_path else steplaw.PUBLISHED[coefficient_set or "li2025"]
      out = steplaw.predict(result, n_params, tokens)
    else:
      law = laws.get(law_name)
      result = fit_study.load_fit(fit_path) if fit_path else None
      if result is not None and result.law != law.name:
        raise ValueError(f"--fit: {fit_path} holds a {result.law} fit, not {law.name}")
      if result is None:
        if not law.published:
          raise ValueError(f"--published: {law.name} has no published coefficients")
        result = law.published[coefficient_set or next(iter(law.published))]
      out = fit_study.optimum(law, result, budget=budget, active_params=n_params, target=target, chance=chance,
                              experts=candidates)  # fmt: skip
  except (ValueError, KeyError) as e:
    _fail(e if isinstance(e, ValueError) else ValueError(f"--coefficients: unknown set {e}"))
  if fmt == "json":
    click.echo(json.dumps(out.to_dict("records") if hasattr(out, "to_dict") else out, indent=2))
  elif law_name == "steplaw":
    interval = lambda v, f: "" if v is None else f"[{f(v[0])}, {f(v[1])}]"  # noqa: E731
    console.print_table(f"steplaw at N = {n_params:.3g}, D = {tokens:.3g}", ["quantity", "value", "interval"],
                        [["lr", f"{out['lr']:.4g}", interval(out["lr_interval"], lambda v: f"{v:.4g}")],
                         ["batch size (tokens)", console.human(out["batch_size"]),
                          interval(out["batch_size_interval"], console.human)]])  # fmt: skip
  elif law_name == "ludziejewski_lr":
    rows = [[f"{r['experts']:g}", f"{r['lr']:.4g}"] for r in (out if isinstance(out, list) else [out])]
    console.print_table(f"Ludziejewski et al. 2025 Eq. 8 at N_act = {n_params:.3g}", ["E", "lr"], rows)
  else:
    columns = [c for c in out.columns if not c.endswith(("_lo", "_hi")) and c != "best_share"]
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    rows = [[cell(r[c]) + (f" [{cell(r[c + '_lo'])}, {cell(r[c + '_hi'])}]" if c + "_lo" in out else "")
             for c in columns] for _, r in out.iterrows()]  # fmt: skip
    console.print_table(f"{law_name}: {fit_study.OPTIMA[law_name]}", columns, rows)
    if "best_share" in out:
      click.echo("best E across bootstrap replicates: " + ", ".join(
        f"E={e:g} {share:.0%}" for e, share in zip(out["experts"], out["best_share"]) if share))  # fmt: skip


@main.command("plot")
@click.argument("study")
@click.option("--kind", type=click.Choice(["curves", "isoflop", "fit", "residuals", "optimal"]), required=True)
@click.option("--law", "law_name", default="chinchilla", show_default=True, help="Law for fit, residuals, optimal.")
@click.option("--fit", "fit_path", metavar="FILE", help="Use this fit.json instead of fitting now.")
@click.option("--convention", type=click.Choice(config_lib.FLOPS_CONVENTIONS), help="[default: the law's own]")
@click.option("--loss", type=click.Choice(["final_eval", "smoothed_train"]), default="final_eval", show_default=True)
@click.option("--window", default="0.01", show_default=True, help="smoothed_train window (steps or token fraction).")
@click.option("--out", "out_dir", default="plots", show_default=True, help="Directory for the PNG and SVG files.")
@store_options
def plot_command(study, kind, law_name, fit_path, convention, loss, window, out_dir, root, store_path) -> None:
  """Draw a study's figure (PNG and SVG): loss curves, isoFLOP profiles, fitted law, residuals or optimal."""
  from mixlaws import store
  from mixlaws.fit import study as fit_study

  try:
    with _open_store(root, store_path) as st:
      paths = fit_study.plot(kind, st, study, out_dir, law_name=law_name, convention=convention, loss=loss,
                             window=store.parse_window(window), fit_path=fit_path)  # fmt: skip
  except ValueError as e:
    _fail(e)
  for path in paths:
    click.echo(f"wrote {path}")


@main.command("report")
@click.argument("study")
@store_options
@click.option("--out", default="report.html", show_default=True, help="The HTML file to write (replaced if it exists).")
@click.option("--law", "law_names", multiple=True, metavar="NAME",
              help="Fit this law (repeatable) [default: chinchilla on the dense runs, wang2024 on all].")  # fmt: skip
@click.option(
  "--fit", "fit_paths", multiple=True, metavar="FILE", help="Use this fit.json (repeatable) instead of fitting."
)
@click.option("--bootstrap", type=click.IntRange(min=0), default=100, show_default=True, help="Resamples per fit.")
def report_command(study, root, store_path, out, law_names, fit_paths, bootstrap) -> None:
  """One self-contained HTML page of a study: grid, curves, losses, fits, optimal allocation, health."""
  from mixlaws.fit import study as fit_study
  from mixlaws.report import study as report_study

  try:
    fits = [fit_study.load_fit(path) for path in fit_paths]
    with _open_store(root, store_path) as st:
      path = report_study.write(st, study, out, law_names=law_names or report_study.LAWS, fits=fits,
                                bootstrap=bootstrap)  # fmt: skip
  except ValueError as e:
    _fail(e)
  click.echo(f"wrote {path}")


@bench_group.command("preflight")
@click.option("--study", "studies", multiple=True, help="A paper study (repeatable) [default: the four paper studies].")
@click.option("--max-compiles", type=int, default=1, show_default=True,
              help="Layouts compiled per run, best estimate first, until one fits.")  # fmt: skip
@click.option("--cached-only", is_flag=True,
              help="Compile nothing: record runs whose verdict is not cached as not measured (estimate only).")  # fmt: skip
@click.option("--out", "out_dir", default="bench", show_default=True, help="Directory for preflight.json and .md.")
def bench_preflight(studies, max_compiles, cached_only, out_dir) -> None:
  """Largest runs of the paper studies on their declared TPU slices (AOT with libtpu, no TPU): GiB per device
  against HBM and MoE ÷ equal-total dense memory."""
  from mixlaws.bench import preflight as bench_preflight_lib

  try:
    if max_compiles < 1:
      raise ValueError(f"--max-compiles: must be at least 1, got {max_compiles}")
    report = bench_preflight_lib.run(tuple(studies) or bench_preflight_lib.STUDIES, max_compiles=max_compiles,
                                     log=lambda line: click.echo(line, err=True), cached_only=cached_only)  # fmt: skip
  except ValueError as e:
    _fail(e)
  _write_bench("preflight", report, out_dir)


@bench_group.command("fit")
@click.option("--points", type=click.IntRange(min=10), default=250, show_default=True, help="Synthetic points.")
@click.option("--scipy-starts", type=click.IntRange(min=1), help="Time the scipy loop on this many of the starts and "
              "scale up [default: all 4,500].")  # fmt: skip
@click.option("--bootstrap", type=click.IntRange(min=1), default=1000, show_default=True, help="Resamples.")
@click.option("--out", "out_dir", default="bench", show_default=True, help="Directory for fit.json and fit.md.")
def bench_fit(points, scipy_starts, bootstrap, out_dir) -> None:
  """Chinchilla fit from Hoffmann et al.'s 4,500 starts: vectorised JAX against a scipy L-BFGS-B loop."""
  from mixlaws.bench import fit as bench_fit_lib

  report = bench_fit_lib.run(points=points, scipy_starts=scipy_starts, bootstrap=bootstrap)
  _write_bench("fit", report, out_dir)


@bench_group.command("science")
@click.option("--work-dir", default="bench/science-runs", show_default=True,
              help="Where the runs go; finished runs are reused, so a rerun resumes.")  # fmt: skip
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Training processes.")
@click.option("--no-train", is_flag=True, help="Only measure the findings on the runs already in --work-dir.")
@click.option("--out", "out_dir", default="bench", show_default=True, help="Directory for science.json and science.md.")
def bench_science(work_dir, workers, no_train, out_dir) -> None:
  """Do our CPU runs reproduce the papers' MoE findings (F1-F5, seeds, 95% intervals, verdicts)?"""
  from mixlaws.bench import science as bench_science_lib

  try:
    report = bench_science_lib.run(work_dir, workers=workers, train=not no_train)
  except RuntimeError as e:
    _fail(e)
  _write_bench("science", report, out_dir, markdown=bench_science_lib.to_markdown(report))


@bench_group.command("train")
@click.option("-o", "--override", "overrides", multiple=True, metavar="SECTION.FIELD=VALUE",
              help="Override one field of the benchmark's ~1M-parameter config.")  # fmt: skip
@click.option("--steps", type=click.IntRange(min=10), default=150, show_default=True, help="Steps per timed run.")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="Alternating rounds.")
@click.option("--work-dir", help="Where the benchmark's runs go [default: the system temp dir].")
@click.option("--out", "out_dir", default="bench", show_default=True, help="Directory for train.json and train.md.")
def bench_train(overrides, steps, rounds, work_dir, out_dir) -> None:
  """Training loop host overhead vs a bare step (target < 5%) and warm-cache start-up (first step < 3 s)."""
  from mixlaws.bench import train as bench_train_lib

  try:
    report = bench_train_lib.run(tuple(overrides), steps=steps, rounds=rounds, work_dir=work_dir,
                                 log=lambda line: click.echo(line, err=True))  # fmt: skip
  except ValueError as e:
    _fail(e)
  _write_bench("train", report, out_dir)


@bench_group.command("all")
@click.option("--only", default=",".join(("model", "data", "train", "collect", "fit")), show_default=True,
              help="Comma-separated benchmarks to run.")  # fmt: skip
@click.option("--out", "out_dir", default="bench", show_default=True, help="Directory for all.json and all.md.")
def bench_all(only, out_dir) -> None:
  """Every benchmark at its defaults: one report of headline ratios, targets and the machine."""
  from mixlaws.bench import suite

  try:
    report = suite.run([name.strip() for name in only.split(",") if name.strip()],
                       log=lambda line: click.echo(line, err=True))  # fmt: skip
  except ValueError as e:
    _fail(e)
  _write_bench("all", report, out_dir, markdown=suite.to_markdown(report))


@main.command("demo")
@click.option("--root", default="./runs", show_default=True, help="Run root of the smoke study and the store.")
@click.option("--out", default="./demo-results", show_default=True, help="Where tables, fits and plots go.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Local worker processes.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=200, show_default=True, help="Resamples per fit.")
def demo_command(root, out, workers, bootstrap) -> None:
  """The whole pipeline on this machine: train the smoke study, collect, fit, export, plot."""
  from mixlaws import demo

  try:
    code = demo.run(root, out, workers=workers, bootstrap=bootstrap)
  except ValueError as e:
    _fail(e)
  sys.exit(code)
