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
    state = train.train(cfg, run_dir, progress=not quiet)
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
              help="Compile each distinct run shape for TOPOLOGY (e.g. v5p:4x4x4, or local[:N] devices) and add "
                   "its memory per device and verdict.")  # fmt: skip
def plan_command(study, variant, filter_text, fmt, accelerator, mfu, convention, preflight_target) -> None:
  """One row per run of STUDY (id, shape, E, G, router, parameters, tokens, steps, FLOPs) and the totals."""
  import csv

  from mixlaws import console, registry

  try:
    cost = registry.Cost.of(accelerator, mfu)
    specs = registry.expand(study, variant, filter_text)
    rows = [spec.row(convention) for spec in specs]
    columns = PLAN_COLUMNS
    if preflight_target:
      from mixlaws import preflight

      verdicts = preflight.preflight_many([spec.config for spec in specs], preflight_target)
      for row, verdict in zip(rows, verdicts, strict=True):
        row["memory_gib"] = round(verdict.bytes_per_device / 2**30, 3)
        row["fits"] = verdict.fits
      columns = (*PLAN_COLUMNS, "memory_gib", "fits")
  except ValueError as e:
    _fail(e)
  total = registry.totals(specs, cost, convention)
  summary = (
    f"{total['runs']} runs, {total['flops']:.3g} training FLOPs ({convention}), "
    f"{total['chip_hours']:.3g} chip-hours on {accelerator} ({cost.peak_flops:.3g} FLOP/s) at {mfu:.0%} MFU"
  )
  if fmt == "json":
    plan = {"study": study, "variant": variant, "filter": filter_text, "runs": rows, "totals": total}
    click.echo(json.dumps(plan, indent=2))
  elif fmt == "csv":
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    click.echo(summary, err=True)
  else:
    table = [[_plan_cell(c, r[c]) for c in columns] for r in rows]
    headers = ["run id", "d", "L", "E", "G", "k", "router", "N", "N_act", "N_non-emb", "D", "steps", "FLOPs"]
    headers += ["GiB/device", "fits"] if preflight_target else []
    console.print_table(study if variant is None else f"{study} ({variant})", headers, table)
    click.echo(summary)


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
def run_command(study, variant, filter_text, backend, root, retry_failed, stale_after, dry_run, workers, no_progress,
                processes, devices_per_process, accelerator_type, slices, project, zone, name, package, pack_chips,
                poll, runtime_version, provisioning, cluster, docker_image, max_restarts) -> None:  # fmt: skip
  """Queue STUDY's runs under ROOT (once) and start workers on a backend; rerun it after any failure."""
  from mixlaws import registry, sweep
  from mixlaws.launch import common, local, local_multihost, tpu_vm, xpk

  options = common.WorkerOptions(retry_failed, sweep.STALE_AFTER if stale_after is None else stale_after)
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
      click.echo(f"# queue: {len(specs)} runs under {sweep.study_dir(root, label)} (not written in a dry run)")
    else:
      queued = sweep.enqueue(specs, root)
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

  from mixlaws import console, sweep

  label = study if variant is None else f"{study}-{variant}"
  try:
    if not sweep.study_dir(root, label).exists():
      raise ValueError(f"{sweep.study_dir(root, label)}: no runs; `mixlaws run {label}` queues them")
    rows = sweep.scan(root, label, stale_after=sweep.STALE_AFTER if stale_after is None else stale_after)
  except ValueError as e:
    _fail(e)
  found = sweep.counts(rows)
  if fmt == "json":
    click.echo(json.dumps({"counts": found, "runs": [dataclasses.asdict(r) for r in rows]}, indent=2))
    return
  table = [[r.run_id, r.state, f"{r.step}/{r.total_steps}", str(r.attempt), f"{r.heartbeat_age:.0f}s", r.host,
            (r.error or "")[:60]] for r in rows]  # fmt: skip
  console.print_table(f"{label}: " + ", ".join(f"{n} {s}" for s, n in found.items() if n),
                      ["run id", "state", "step", "attempt", "heartbeat", "host", "error"], table)  # fmt: skip


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
  "downstream_ceiling, downstream_tpr, gadre2024, gadre2024_error, muennighoff2023."
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
@store_options
def fit_command(study, law_name, csv_path, mapping, loss, window, convention, bootstrap, holdout, seed, starts,
                metric, chance, out, root, store_path) -> None:  # fmt: skip
  """Fit a law to a study's final losses (or a CSV) from every start of its grid; print the coefficients."""
  from mixlaws import console, store
  from mixlaws.fit import laws
  from mixlaws.fit import study as fit_study

  try:
    law = laws.get(law_name)
    if metric and (csv_path or law.target != "neg_log_accuracy"):
      raise ValueError("--metric: needs a STUDY and a downstream law (downstream_power, downstream_ceiling, ...)")
    if csv_path:
      if study:
        raise ValueError("give either STUDY or --csv, not both")
      frame = fit_study.read_csv(csv_path, fit_study.parse_map(mapping))
      source = csv_path
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
  if "holdout" in report:
    h = report["holdout"]
    click.echo(f"held out {h['n_test']} point(s): RMSE {h['rmse']:.4g}, max error {h['max_error']:.4g} "
               f"(train RMSE {h['train_rmse']:.4g})")  # fmt: skip
  if out:
    with open(out, "w") as f:
      json.dump({**report, "source": source}, f, indent=2)
    click.echo(f"wrote {out}")


@main.command("optimal")
@click.option("--law", "law_name", required=True, help="chinchilla, krajewski2024 or ludziejewski2025.")
@click.option("--fit", "fit_path", metavar="FILE", help="Coefficients from a fit.json written by `mixlaws fit`.")
@click.option("--published", is_flag=True, help="Use the law's published coefficients.")
@click.option("--coefficients", "coefficient_set", metavar="NAME", help="Which published set [default: the first].")
@click.option("--budget", type=float, required=True, help="Training compute in FLOPs, e.g. 1e21.")
@click.option("--memory", metavar="SIZE", help="Memory cap on weights (+ KV cache), e.g. 80GB (ludziejewski2025).")
@click.option("--kv-tokens", type=float, default=0.0, help="Tokens held in the KV cache (ludziejewski2025).")
@click.option(
  "--inference-tokens", type=float, default=0.0, help="Tokens served, charged 2·N_act each (ludziejewski2025)."
)
@click.option("--experts", default="1,2,4,8,16,32", show_default=True, help="Candidate E (ludziejewski2025).")
@click.option("--expansion-rate", type=int, default=64, show_default=True, help="E of the krajewski2024 law.")
def optimal_command(law_name, fit_path, published, coefficient_set, budget, memory, kv_tokens, inference_tokens,
                    experts, expansion_rate) -> None:  # fmt: skip
  """Compute-optimal N, D (and G or E) for a FLOPs budget, from a fit or published coefficients."""
  from mixlaws import console
  from mixlaws.fit import laws
  from mixlaws.fit import study as fit_study

  try:
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
