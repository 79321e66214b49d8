"""`smoke` and every `tiny` variant fit on the 8 fake CPU devices (issue 6), via pre-flight."""

import pytest

from mixlaws import preflight, registry

CPU_STUDIES = ["smoke"] + [f"{name}:tiny" for name in registry.studies() if "tiny" in registry.variants(name)]


@pytest.mark.parametrize("study", CPU_STUDIES)
def test_largest_run_fits_eight_devices(study):
  name, _, variant = study.partition(":")
  specs = registry.expand(name, variant or None, n_devices=8)
  # Memory grows with the model and the batch; the run with the most parameters bounds the study.
  largest = max(specs, key=lambda s: (s.counts.params.total, s.config.train.batch_size))
  verdict = preflight.preflight_many([largest.config], "local:8")[0]
  assert verdict.fits, f"{largest.run_id}: {verdict.reason}"
  assert verdict.n_devices == 8 and verdict.bytes_per_device > 0


def test_parse_target():
  assert preflight.parse_target("v5p:4x4x4") == ("v5p:4x4x4", None)
  assert preflight.parse_target("local") == (None, None)
  assert preflight.parse_target("local:8") == (None, 8)
  with pytest.raises(ValueError, match="expected local:N"):
    preflight.parse_target("local:x")
