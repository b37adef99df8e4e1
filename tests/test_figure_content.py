"""What the figures show: flow colours follow direction, the stage grid's input column, colour bar and row labels,
and training curves that say what each curve measures."""

import imageio.v2 as imageio
import numpy as np
from matplotlib.colors import rgb_to_hsv

from attn_har.analysis import figures, maps, overlay, report


def _hue(flow_uv, shape=(4, 4)):
  col = overlay.flow_to_color(np.broadcast_to(np.asarray(flow_uv, np.float32), shape + (2,)))
  return rgb_to_hsv(col[0, 0] / 255.0)


def _circular(a, b):
  d = abs(a - b) % 1.0
  return min(d, 1.0 - d)


def test_flow_colour_follows_direction():
  right, left, down, up = (_hue(v)[0] for v in ((1, 0), (-1, 0), (0, 1), (0, -1)))
  assert _circular(right, left) > 0.35 and _circular(down, up) > 0.35     # opposite directions: far-apart hues
  assert _circular(_hue((1, 0.05))[0], right) < 0.05                      # nearby direction: nearby hue
  assert _hue((3, 0))[0] == right                                         # hue does not depend on speed
  np.testing.assert_array_equal(overlay.flow_to_color(np.zeros((3, 3, 2))), 255)   # no motion: white
  # saturation grows with speed within one field (normalised to the field's largest speed)
  field = np.zeros((1, 3, 2), np.float32)
  field[0, :, 0] = (0.5, 1.0, 2.0)
  sat = rgb_to_hsv(overlay.flow_to_color(field)[0] / 255.0)[:, 1]
  assert sat[0] < sat[1] < sat[2]


def _rows(with_input):
  rng = np.random.default_rng(0)
  img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
  flow = overlay.flow_to_color(rng.normal(size=(32, 32, 2)))
  rows = [{"label": "cbam\nrgb", "image": img, "truth": "walk", "prediction": "run (p=0.60)",
           "maps": {"combined": rng.random((32, 32)), "early": rng.random((16, 16)), "late": rng.random((4, 4))}},
          {"label": "cbam\nflow", "image": flow, "maps": {"combined": rng.random((32, 32))}}]
  if with_input:
    rows[0].update(input=img, input_label="RGB frame 4/8")
    rows[1].update(input=flow, input_label="flow field 5/10")
  return rows


def test_stage_grid_has_input_column_colour_bar_and_labels(tmp_path):
  fig = figures.stage_grid_figure(_rows(True))
  grid, bar = fig.axes[:10], fig.axes[10:]
  assert len(grid) == 2 * 5 and len(bar) == 1                          # input + 4 map columns, one colour bar
  assert grid[0].get_title() == "input" and grid[0].get_xlabel() == "RGB frame 4/8"
  np.testing.assert_array_equal(grid[5].get_images()[0].get_array(), _rows(True)[1]["input"])
  assert "0 = lowest, 1 = highest" in bar[0].get_ylabel()
  assert grid[0].get_ylabel() == "cbam\nrgb\ntrue: walk\npred: run (p=0.60)"
  assert grid[5].get_ylabel() == "cbam\nflow"                            # no truth / prediction given: none shown
  assert [a.get_title() for a in grid[1:5]] == ["combined (on input)", "early", "medium", "late"]
  assert grid[2].get_xlabel() == "16 x 16"
  # the PNG grows by about one 2-inch column (100 dpi) with the input column; rows without 'input' get none
  with_in = imageio.imread(figures.stage_grid(_rows(True), tmp_path / "a.png"))
  without = imageio.imread(figures.stage_grid(_rows(False), tmp_path / "b.png"))
  assert 150 <= with_in.shape[1] - without.shape[1] <= 250
  assert len(figures.stage_grid_figure(_rows(False)).axes) == 2 * 4 + 1


def _records(two_stream):
  out = []
  for step in range(1, 7):
    row = {"step": step, "split": "train", "loss": 3.0 / step, "top1": 0.1 * step}
    if two_stream:
      row.update(rgb_loss=1.2 / step, flow_loss=1.4 / step)
    out.append(row)
    if step % 2 == 0:
      out.append({"step": step, "split": "val", "loss": 1.5 / step, "top1": 0.1 * step, "clip_top1": 0.09 * step})
  return out


def _labels(ax):
  return [line.get_label() for line in ax.get_lines()]


def test_two_stream_curves_put_objective_and_fused_loss_on_separate_labelled_axes():
  fig = figures.training_curves_figure(_records(True), stream_loss_weight=1.0)
  objective, val, acc = fig.axes
  assert _labels(objective)[0] == "train objective: CE(fused) + 1 x mean CE(flow, rgb)"
  assert _labels(objective)[1:] == ["train CE, flow stream alone", "train CE, rgb stream alone"]
  assert not any("val" in label for label in _labels(objective))
  assert _labels(val)[0] == "val loss: NLL of the fused prediction, per clip"
  # the derived fused training CE: objective minus 1.0 x mean of the stream CEs = 1.7 / step
  derived = val.get_lines()[1]
  np.testing.assert_allclose(derived.get_ydata(), 1.7 / np.arange(1, 7))
  assert acc.get_ylabel() == "top-1 accuracy" and len(acc.get_lines()) == 3
  assert all(a.get_xlabel() == "training step" for a in fig.axes)
  # without the weight nothing is derived, and the legend names the weight 'w'
  objective, val, _ = figures.training_curves_figure(_records(True)).axes
  assert "+ w x mean" in _labels(objective)[0] and len(val.get_lines()) == 1


def test_single_stream_curves_share_one_loss_axis():
  fig = figures.training_curves_figure(_records(False))
  loss, acc = fig.axes
  assert _labels(loss) == ["train loss: CE, training batches", "val loss: NLL, per clip"]
  assert loss.get_ylabel() == "cross-entropy / NLL" and acc.get_ylabel() == "top-1 accuracy"


def test_grid_rows_carry_input_truth_and_prediction():
  rng = np.random.default_rng(0)
  t, k = 4, 3
  logits = np.zeros((t, k), np.float32)
  logits[:, 2] = 2.0
  e = maps.Explanation({"a": rng.random((t, 4, 4)).astype(np.float32)}, {}, {}, logits, np.zeros(t, np.int32))
  flow = np.zeros((t, 8, 8, 4), np.float32)
  flow[..., 2] = 1.0                                          # second (middle) field of the stack moves right
  clip = {"rgb": rng.random((t, 8, 8, 3)).astype(np.float32), "flow": flow, "label": 1}
  rows = report.grid_rows("m", clip, {"rgb": e, "flow": e}, classes=["a", "b", "c"])
  assert [r["label"] for r in rows] == ["m\nrgb stream, attention", "m\nflow stream, attention"]
  assert all(r["truth"] == "b" for r in rows)
  p = np.exp(2.0) / (np.exp(2.0) + 2)
  assert rows[0]["prediction"] == f"c (p={p:.2f})"
  np.testing.assert_array_equal(rows[1]["input"], overlay.flow_to_color(flow[2, ..., 2:4]))
  assert rows[1]["input_label"].startswith("flow of frame 3/4, field 2/2")
  assert report.grid_rows("m", dict(clip, label=-1), {"rgb": e})[0]["truth"] == "unknown"


def test_class_names_from_results(tmp_path):
  assert report.class_names(tmp_path) is None                               # no results.json
  (tmp_path / "results.json").write_text('{"classes": ["walk", "run"]}')
  assert report.class_names(tmp_path) == ["walk", "run"]
  assert report.class_name(1, ["walk", "run"]) == "run" and report.class_name(5, ["walk"]) == "class 5"
  (tmp_path / "results.json").write_text("not json")
  assert report.class_names(tmp_path) is None
