"""A store the run generates is built while the train step compiles: the class names and batch shapes are known
from the config beforehand, and the run equals one that reads the store it finds."""

import jax
import numpy as np
import pytest

from attn_har.config.loader import load_config
from attn_har.data import prepare
from attn_har.train import checkpointing, sharding, train

SMOKE = "configs/synthetic_baseline.py:smoke,stream=rgb,train.progress=false,steps=3"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
  """Each test generates its store into its own cache folder (the compilation cache stays shared)."""
  monkeypatch.setenv("ATTN_HAR_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("spec", ["configs/synthetic_cbam.py:smoke", "configs/synthetic_baseline.py:smoke,stream=rgb"])
def test_classes_are_known_before_the_store_and_the_batch_spec_is_the_loaders(spec, tmp_path):
  config = load_config(spec)
  planned = prepare.classes_of_store_to_generate(config)
  assert planned
  run_data = prepare.RunData(config, tmp_path / "run", log=lambda *_: None, build_workers=1)
  assert run_data.classes == planned
  assert prepare.classes_of_store_to_generate(config) is None   # the store now exists
  config.model.num_classes = len(planned)
  put = sharding.data_sharding(sharding.make_mesh())
  batch = next(run_data.train(put, None, config.train.batch_size))
  spec = prepare.train_batch_spec(config, config.train.batch_size, put)
  seen = {k: (v.shape, v.dtype, v.sharding) for k, v in batch.items()}
  assert seen == {k: (v.shape, v.dtype, v.sharding) for k, v in spec.items()}


def test_image_configs_read_their_data_first():
  assert prepare.classes_of_store_to_generate(load_config("configs/cifar100_baseline.py")) is None


def test_a_run_that_generates_its_store_while_compiling_equals_one_that_reads_it(tmp_path):
  first = train.train_and_evaluate(load_config(SMOKE), tmp_path / "first")
  second = train.train_and_evaluate(load_config(SMOKE), tmp_path / "second")
  assert first["timing"]["store_generated_while_compiling"]
  assert not second["timing"]["store_generated_while_compiling"]
  assert first["data"] == second["data"] and first["classes"] == second["classes"]
  assert first["test"] == second["test"]
  a, b = (checkpointing.restore_state(tmp_path / run, "latest") for run in ("first", "second"))
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
