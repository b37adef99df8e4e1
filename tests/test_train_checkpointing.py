"""Orbax checkpointing: keep-N + best-by-validation, state-only restore, init-from with named skips."""

import numpy as np
import pytest

from attn_har.train import checkpointing


def _state(v: float):
  return {"params": {"frame": {"conv": {"kernel": np.full((3, 3, 3, 4), v, np.float32)},
                               "head": {"kernel": np.full((4, 5), v, np.float32)}}},
          "batch_stats": {"frame": {"bn": {"mean": np.full((4,), v, np.float32)}}},
          "opt_state": {"trace": np.full((2,), v, np.float32)}, "step": np.int32(v)}


def test_keep_latest_and_best_and_restore_state(tmp_path):
  with checkpointing.make_manager(tmp_path, keep=2) as m:
    for step, top1 in zip((1, 2, 3, 4, 5), (0.2, 0.6, 0.4, 0.5, 0.6)):
      checkpointing.save(m, step, _state(step), None, {"val_top1": top1, "val_loss": 1.0 / step})
  info = checkpointing.checkpoint_steps(tmp_path)
  # ties on top-1 go to the lower validation loss (step 5: loss 0.2 < step 2: 0.5)
  assert info["best"] == 5 and info["latest"] == 5 and sorted(info["all"]) == [4, 5]
  with checkpointing.make_manager(tmp_path, keep=2) as m:
    checkpointing.save(m, 6, _state(6), None, {"val_top1": 0.9, "val_loss": 3.0})
    checkpointing.save(m, 7, _state(7), None, {"val_top1": 0.1, "val_loss": 3.0})
    checkpointing.save(m, 8, _state(8), None, {"val_top1": 0.1, "val_loss": 3.0})
  info = checkpointing.checkpoint_steps(tmp_path)
  assert info["best"] == 6 and sorted(info["all"]) == [6, 7, 8]   # the best survives keep-2
  best, latest = checkpointing.restore_state(tmp_path, "best"), checkpointing.restore_state(tmp_path, "latest")
  assert int(best["step"]) == 6 and float(best["params"]["frame"]["head"]["kernel"][0, 0]) == 6.0
  assert int(latest["step"]) == 8
  with pytest.raises(ValueError, match="best"):
    checkpointing.restore_state(tmp_path, "worst")
  with pytest.raises(FileNotFoundError, match="checkpoint"):
    checkpointing.restore_state(tmp_path / "nothing", "best")


def test_init_two_stream_from_stream_checkpoints(tmp_path):
  with checkpointing.make_manager(tmp_path / "rgb_run") as m:
    checkpointing.save(m, 3, _state(7.0), None, None)
  two_stream = {
      "params": {"rgb": {"frame": {"conv": {"kernel": np.zeros((3, 3, 3, 4), np.float32)},
                                   "head": {"kernel": np.zeros((4, 9), np.float32)}}},
                 "flow": {"frame": {"conv": {"kernel": np.zeros((3, 3, 10, 4), np.float32)}}}},
      "batch_stats": {"rgb": {"frame": {"bn": {"mean": np.zeros((4,), np.float32)}}}},
      "opt_state": {}, "step": np.int32(0)}
  new, report = checkpointing.init_from(two_stream, [(str(tmp_path / "rgb_run"), "latest", ("rgb",))])
  assert float(new["params"]["rgb"]["frame"]["conv"]["kernel"].max()) == 7.0
  assert float(new["batch_stats"]["rgb"]["frame"]["bn"]["mean"][0]) == 7.0
  assert float(np.abs(new["params"]["flow"]["frame"]["conv"]["kernel"]).max()) == 0.0
  text = "\n".join(report)
  assert "skipped (not in checkpoint or shape differs): rgb/frame/head/kernel" in text   # 9 classes vs 5
  assert "unused checkpoint entry: rgb/frame/head/kernel (shape)" in text


def _iterator():
  import grain
  return iter(grain.MapDataset.range(40).shuffle(seed=3).batch(4))


def test_resume_restores_state_and_repositions_the_data_iterator(tmp_path):
  it = _iterator()
  for _ in range(3):
    next(it)
  with checkpointing.make_manager(tmp_path, keep=2) as m:
    checkpointing.save(m, 3, _state(3.0), it, {"val_top1": 0.5, "val_loss": 1.0})
  expected = [next(it).tolist() for _ in range(2)]
  fresh = _iterator()
  assert next(_iterator()).tolist() != expected[0]   # a fresh iterator starts elsewhere
  target = dict(_state(0.0), step=np.zeros((), np.int32))   # the train loop's state: arrays only
  with checkpointing.make_manager(tmp_path, keep=2) as m:
    state, step = checkpointing.resume(m, target, fresh)
  assert step == 3 and int(state["step"]) == 3
  np.testing.assert_array_equal(state["params"]["frame"]["head"]["kernel"], np.full((4, 5), 3.0))
  assert [next(fresh).tolist() for _ in range(2)] == expected
