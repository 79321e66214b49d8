"""Bad input: each case fails with one line that names the field or file and the reason."""

import dataclasses

import pytest

from mixlaws import data
from mixlaws.data import datasets


def _one_line(excinfo) -> str:
  message = str(excinfo.value)
  assert "\n" not in message
  return message


def _tfds(cfg, dataset, data_dir):
  return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source="tfds", dataset=dataset, data_dir=data_dir))


@pytest.fixture(scope="module")
def cfg(make_cfg):
  return make_cfg()


def test_missing_data_dir(cfg, tmp_path):
  with pytest.raises(ValueError) as e:
    data.TrainIterator(_tfds(cfg, "c4/en:3.1.0", str(tmp_path / "nowhere")))
  assert _one_line(e) == f"data.data_dir: {tmp_path / 'nowhere'} does not exist"
  assert not (tmp_path / "nowhere").exists()


def test_unknown_dataset(cfg, tmp_path):
  with pytest.raises(ValueError) as e:
    data.TrainIterator(_tfds(cfg, "no_such_dataset_xyz", str(tmp_path)))
  assert _one_line(e).startswith("data.dataset: unknown dataset 'no_such_dataset_xyz'")


def test_registered_but_unprepared_dataset_is_not_downloaded(cfg, tmp_path):
  with pytest.raises(ValueError) as e:
    datasets.open_source(_tfds(cfg, "mnist", str(tmp_path)).data)
  assert "is not prepared in" in _one_line(e) and not list(tmp_path.iterdir())


def test_glob_matching_nothing(make_cfg, tmp_path):
  with pytest.raises(ValueError) as e:
    data.TrainIterator(make_cfg(f"data.paths={tmp_path}/*.txt"))
  assert _one_line(e) == f"data.paths: '{tmp_path}/*.txt' matches no files"


def test_empty_corpus(make_cfg, tmp_path):
  (tmp_path / "empty.txt").write_text("")
  (tmp_path / "blank.jsonl").write_text("\n\n")
  with pytest.raises(ValueError) as e:
    data.TrainIterator(make_cfg(f"data.paths={tmp_path}/*"))
  assert "holds 0 non-empty documents" in _one_line(e)


@pytest.mark.parametrize(
  "records, expected",
  [
    ('{"text": "fine"}\n{"body": "no text field"}\n', "has no field 'text'"),
    ('{"text": "fine"}\n{not json\n', "not valid JSON"),
  ],
)
def test_bad_jsonl(make_cfg, tmp_path, records, expected):
  (tmp_path / "a.jsonl").write_text(records)
  (tmp_path / "b.txt").write_text("another document\n")
  with pytest.raises(ValueError) as e:
    data.TrainIterator(make_cfg(f"data.paths={tmp_path}/*"))
  assert f"{tmp_path}/a.jsonl:2" in _one_line(e) and expected in _one_line(e)


def test_missing_tokenizer_file(make_cfg, tmp_path):
  cfg = make_cfg("data.tokenizer=sentencepiece", f"data.tokenizer_path={tmp_path}/missing.model")
  with pytest.raises(ValueError) as e:
    data.tokenizer(cfg.data)
  assert _one_line(e) == f"data.tokenizer_path: {tmp_path}/missing.model does not exist"


def test_seq_len_larger_than_a_split(make_cfg):
  with pytest.raises(ValueError) as e:
    data.TrainIterator(make_cfg("model.seq_len=100000"))
  assert _one_line(e).startswith("model.seq_len: files/train holds")


def test_eval_budget_larger_than_the_validation_split(make_cfg):
  with pytest.raises(ValueError) as e:
    data.eval_batches(make_cfg("train.eval_tokens=10000000"), 4)
  assert _one_line(e).startswith("train.eval_tokens: 10000000 needs")


def test_vocabulary_smaller_than_the_tokenizer(make_cfg):
  cfg = make_cfg()
  small = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, vocab_size=100))
  with pytest.raises(ValueError) as e:
    data.TrainIterator(small)
  assert _one_line(e).startswith("model.vocab_size: 100 is smaller")


def test_batch_that_does_not_split_over_processes(cfg):
  it = data.TrainIterator(cfg, 0, 4)
  with pytest.raises(ValueError) as e:
    it.next(6)
  assert "do not split evenly over 4 processes" in _one_line(e)
  with pytest.raises(ValueError):
    data.TrainIterator(cfg, 4, 4)
