"""WSD trunks and branches in the store: lineage columns, trunks never a fitted point, mid-run losses flagged."""

import pytest

from mixlaws import collect, config, counting, registry, rundir, store

STUDY = "wsd"
TOKENS_PER_STEP = 1024


def _run(root, name, steps, lineage, losses):
  cfg = config.resolve(config.apply_overrides(config.base_config(), [
    "model.d_model=64", "model.n_layers=2", "model.vocab_size=259", "model.seq_len=64", "train.batch_size=16",
    "train.tokens=0", f"train.steps={steps}",
  ]))  # fmt: skip
  run = rundir.RunDir(root / STUDY / name)
  record = {"study": STUDY, "run_id": name, "config": cfg.to_dict(), "counts": counting.run_counts(cfg).to_dict()}
  run.write_config({**record, "lineage": lineage.to_dict()} if lineage else record)
  run.write_status("done", step=steps)
  first = min(losses)
  records = [{"step": s, "tokens": s * TOKENS_PER_STEP, "split": "train", "loss": v} for s, v in losses.items()]
  records.append({"step": steps, "tokens": steps * TOKENS_PER_STEP, "split": "eval", "loss": losses[steps] + 0.1})
  run.write_metrics(records, attempt=0)
  return first


@pytest.fixture(scope="module")
def family(tmp_path_factory):
  root = tmp_path_factory.mktemp("runs")
  trunk = registry.Lineage("trunk", "wsd-trunk", (8,), (8 * TOKENS_PER_STEP,))
  branch = registry.Lineage("branch", "wsd-trunk", (8,), (8 * TOKENS_PER_STEP,), 2 * TOKENS_PER_STEP)
  _run(root, "wsd-trunk", 8, trunk, {s: 5.0 - 0.1 * s for s in range(1, 9)})
  _run(root, "wsd-branch", 10, branch, {s: 4.0 - 0.2 * s for s in (9, 10)})
  _run(root, "wsd-alone", 10, None, {s: 5.0 - 0.1 * s for s in range(1, 11)})
  report = collect.collect(root, STUDY)
  assert report.runs_written == 3
  return root


def test_lineage_columns_and_trunks_are_never_points(family):
  with store.open(family) as st:
    runs = st.runs(STUDY).set_index("run_id")
    final = st.final_losses(STUDY)
  assert runs.loc["wsd-branch", ["role", "trunk", "fork_tokens", "cooldown_tokens"]].tolist() == [
    "branch", "wsd-trunk", 8192, 2048,
  ]  # fmt: skip
  assert runs.loc["wsd-trunk", "role"] == "trunk" and runs.loc["wsd-alone"].isna()["role"]
  assert sorted(final.run_id) == ["wsd-alone", "wsd-branch"]  # a branch is an ordinary point
  assert final.attrs["left_out"] == {"wsd-trunk": store.TRUNK_LEFT_OUT} and final.attrs["trunks"] == 1
  assert final.set_index("run_id").loss["wsd-branch"] == pytest.approx(4.0 - 2.0 + 0.1)


def test_loss_at_tokens_says_which_points_come_from_mid_run(family):
  with store.open(family) as st:
    at = st.loss_at_tokens(STUDY, [4 * TOKENS_PER_STEP, 8 * TOKENS_PER_STEP, 10 * TOKENS_PER_STEP], window=1)
  flags = {(r, int(t) // TOKENS_PER_STEP): m for r, t, m in zip(at.run_id, at.tokens, at.mid_run)}
  assert flags == {
    ("wsd-alone", 4): True, ("wsd-alone", 8): True, ("wsd-alone", 10): False,  # mid-run until its last token
    ("wsd-trunk", 4): True, ("wsd-trunk", 8): True,  # a trunk never cools down
    ("wsd-branch", 10): False,
  }  # fmt: skip
  assert at.attrs["mid_run"] == 4
