"""Task sources: few-shot prompts, JSONL, TFDS (a real prepared dataset from local files), the embedded tasks."""

import json
from unittest import mock

import pytest
import tensorflow_datasets as tfds

from mixlaws.config import DataConfig
from mixlaws.data import sources
from mixlaws.evaluation import embedded, tasks


def _toy(n=10, pool=()):
  examples = tuple(tasks.Choices((f"q{i}:",) * 2, (f" right{i}", f" wrong{i}"), 0) for i in range(n))
  return tasks.Task("toy", examples, pool=pool)


def test_few_shot_choice_is_fixed_by_the_seed_and_never_the_example_itself():
  task = _toy()
  shot = tasks.with_shots(task, 3, seed=0)
  assert shot.name == "toy_3shot" and shot == tasks.with_shots(task, 3, seed=0)
  assert shot != tasks.with_shots(task, 3, seed=1)
  for i, example in enumerate(shot.examples):
    demos = example.contexts[0].split(tasks.SHOT_SEPARATOR)
    assert len(demos) == 4 and demos[-1] == f"q{i}:"  # three demonstrations, then the example
    shown = {d.split(":")[0] for d in demos[:-1]}
    assert len(shown) == 3 and f"q{i}" not in shown
    assert all(d.endswith(" right" + d.split(":")[0][1:]) for d in demos[:-1])  # demonstrations show the answer
    assert example.contexts[0] == example.contexts[1] and example.continuations == task.examples[i].continuations


def test_few_shot_from_a_separate_pool():
  pool = tuple(tasks.Choices(("p:",) * 2, (" yes", " no"), 1) for _ in range(2))
  shot = tasks.with_shots(_toy(3, pool=pool), 2, seed=0)
  assert all(ex.contexts[0].startswith("p: no\n\np: no\n\nq") for ex in shot.examples)
  with pytest.raises(ValueError, match="--shots: toy has 2 examples"):
    tasks.with_shots(_toy(3, pool=pool), 3, seed=0)


def test_jsonl_task_and_its_errors(tmp_path):
  path = tmp_path / "my bench.jsonl"
  path.write_text(
    json.dumps({"context": "2+2=", "choices": ["4", "5"], "answer": 0})
    + "\n\n"
    + json.dumps({"context": "1+1=", "choices": ["3", "2", "1"], "answer": 1})
    + "\n"
  )
  task = tasks.from_jsonl(str(path))
  assert task.name == "my_bench" and len(task.examples) == 2
  assert task.examples[1] == tasks.Choices(("1+1=",) * 3, ("3", "2", "1"), 1)
  assert len(tasks.from_jsonl(str(path), limit=1).examples) == 1
  bad = {
    '{"context": "x", "choices": ["a", "b"], "answer": 2}': "answer must be the index",
    '{"context": "x", "choices": ["a"], "answer": 0}': "choices must be a list of at least 2",
    '{"context": 3, "choices": ["a", "b"], "answer": 0}': "context must be a string",
    "[1, 2]": "expected a JSON object",
    "{oops": "not valid JSON",
  }
  for line, reason in bad.items():
    path.write_text(json.dumps({"context": "", "choices": ["a", "b"], "answer": 0}) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=f"^{path}:2: {reason}"):
      tasks.from_jsonl(str(path))


def test_absent_tfds_dataset_names_the_dataset_and_the_data_dir(tmp_path):
  for name, spec in tasks.TFDS_TASKS.items():
    with pytest.raises(ValueError, match=f"^{spec.dataset}: not prepared in {tmp_path};"):
      tasks.from_tfds(name, str(tmp_path))
  with pytest.raises(ValueError, match=f"--data-dir: {tmp_path / 'none'} does not exist"):
    tasks.from_tfds("piqa", str(tmp_path / "none"))


def test_prepared_tfds_piqa_is_read_with_its_pool(tmp_path):
  # The real piqa builder, fed local files in its raw layout instead of a download.
  raw = tmp_path / "raw" / "physicaliqa-train-dev"
  raw.mkdir(parents=True)
  splits = {
    "train": [("boil water", "use a pot", "use a sieve", 0), ("cut bread", "use a spoon", "use a knife", 1)],
    "dev": [
      ("open a jar", "twist the lid", "kick the jar", 0),
      ("light a room", "shut the door", "switch on a lamp", 1),
    ],
  }
  for split, rows in splits.items():
    (raw / f"{split}.jsonl").write_text("".join(json.dumps({"id": g, "goal": g, "sol1": a, "sol2": b}) + "\n"
                                                for g, a, b, _ in rows))  # fmt: skip
    (raw / f"{split}-labels.lst").write_text("".join(f"{label}\n" for *_, label in rows))
  data_dir = str(tmp_path / "tfds")
  builder = tfds.builder("piqa", data_dir=data_dir, file_format="array_record")
  with mock.patch.object(tfds.download.DownloadManager, "download_and_extract", return_value=str(tmp_path / "raw")):
    builder.download_and_prepare()
  task = tasks.from_tfds("piqa", data_dir, shots=1)
  expected = {
    tasks.Choices((f"Question: {g}\nAnswer:",) * 2, (f" {a}", f" {b}"), label) for g, a, b, label in splits["dev"]
  }
  assert set(task.examples) == expected
  assert {ex.contexts[0] for ex in task.pool} == {f"Question: {g}\nAnswer:" for g, *_ in splits["train"]}
  assert tasks.from_tfds("piqa", data_dir).pool == ()  # zero-shot reads no pool


def test_tfds_adapters_on_records_in_each_feature_schema():
  wino = tasks.TFDS_TASKS["winogrande"].adapt(
    {
      "sentence": b"The cup fell off the table because _ was unsteady.",
      "option1": b"the cup",
      "option2": b"the table",
      "label": 1,
    }  # fmt: skip
  )
  assert wino.contexts == ("The cup fell off the table because the cup", "The cup fell off the table because the table")
  assert wino.continuations == (" was unsteady.",) * 2 and wino.answer == 1
  arc = tasks.TFDS_TASKS["arc_easy"].adapt(
    {"question": "Which is a gas?", "choices": {"text": ["ice", "steam", "rock"], "label": [0, 1, 2]}, "answerKey": 1}
  )
  assert arc == tasks.Choices(("Question: Which is a gas?\nAnswer:",) * 3, (" ice", " steam", " rock"), 1)
  hella = tasks.TFDS_TASKS["hellaswag"].adapt(
    {
      "activity_label": "Baking",
      "context": "She opens the oven [header] and",
      "endings": ["waits.", "sings  loudly."],
      "label": 0,
    }  # fmt: skip
  )
  assert hella == tasks.Choices(("Baking: She opens the oven and",) * 2, (" waits.", " sings loudly."), 0)


@pytest.fixture(scope="module")
def held_out_text():
  data = embedded.corpus(DataConfig())
  docs = sources.split_documents(data, sources.corpus_files(data))["validation"]
  return "\n".join(text for _, text in sources.read_documents(docs, data.text_field))


def test_embedded_tasks_come_from_held_out_documents_only(held_out_text):
  for name in embedded.TASKS:
    task = embedded.build(name, DataConfig(), limit=40, seed=3)
    assert len(task.examples) >= 35, name
    for ex in task.examples:
      if task.generative:
        assert ex.prompt + ex.reference in held_out_text + "\n"
      else:
        true_text = ex.contexts[ex.answer] + ex.continuations[ex.answer]
        assert true_text.split("\n", 1)[1] in held_out_text + "\n", name  # from its second line: whole lines
  assert embedded.build("line_end", DataConfig(), limit=40, seed=3) == embedded.build("line_end", DataConfig(), 40, 3)
  assert embedded.build("line_end", DataConfig(), limit=40, seed=3) != embedded.build("line_end", DataConfig(), 40, 4)


def test_multiple_choice_embedded_tasks_are_fair():
  for name in ("line_end", "next_line"):
    task = embedded.build(name, DataConfig(), limit=200, seed=0)
    answers = [ex.answer for ex in task.examples]
    assert all(30 <= answers.count(a) <= 70 for a in range(4)), answers  # about 50 ± 6 each: position tells nothing
    for ex in task.examples:
      assert len(set(ex.continuations)) == 4 and all(c.endswith("\n") for c in ex.continuations)
      if name == "line_end":
        assert len({len(c) for c in ex.continuations}) == 1  # equal lengths: raw log-likelihood is fair


def test_close_brackets_checker():
  assert embedded.brackets_balanced("    x = f(a[1], {2: (3)})")
  assert not embedded.brackets_balanced("x = f(a[1)]")
  assert not embedded.brackets_balanced("x = f(a")
  assert not embedded.brackets_balanced("x = f(a))")
  assert embedded.brackets_balanced("x = f('(')")  # brackets in strings do not count
  problem = tasks.Problem("def f():\n    return g(a, [b", "])\n")
  check = embedded.check_close_brackets
  assert check(problem, "])\nrest") and check(problem, "] + [c])\n")
  assert not check(problem, "])") and not check(problem, ")]\n") and not check(problem, "\n")
  task = embedded.close_brackets(DataConfig(), limit=30, seed=0)
  assert all(task.check(p, p.reference) for p in task.examples)
  assert not any(task.check(p, "\n") for p in task.examples)
