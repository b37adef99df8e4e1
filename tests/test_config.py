"""Config system: every config file loads, locks and passes `check_config`; arguments parse; typos fail before any
work; the config package imports nothing else of attn_har."""

import pathlib

import ml_collections
import pytest

from attn_har.config import args as args_lib
from attn_har.config.loader import config_from_json, config_to_json, load_config, split_spec
from attn_har.models.build import STREAM_INPUTS, build_model, lift_mode, sample_batch
from attn_har.train.check import check_config

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (REPO / "configs").glob("[!_]*.py"))
ATTENTIONS = ("baseline", "l2pa", "gate", "gate_grid", "residual", "cbam")


def test_every_dataset_attention_pair_has_a_config():
  names = {p.stem for p in CONFIGS}
  expected = {f"{d}_{a}" for d in ("ucf101", "hmdb51", "cifar100", "imagenette", "synthetic") for a in ATTENTIONS}
  assert expected <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_locked_and_documented(path):
  for arg in (None, "smoke"):
    c = load_config(f"{path}:{arg}" if arg else str(path))
    check_config(c)
    assert c.is_locked
    with pytest.raises(AttributeError):
      _ = c.train.num_stpes  # a misspelt key fails
    with pytest.raises((KeyError, AttributeError)):
      c.train.num_stpes = 3
  doc = path.read_text().split('"""')[1]
  for word in ("Run:", "Expected:", "Runtime:"):
    assert word in doc, f"{path.name} docstring lacks {word}"
  attention = path.stem.split("_", 1)[1].removeprefix("marked_")
  assert c.model.attention == ("none" if attention == "baseline" else attention)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_has_an_initialisation_batch(path):
  """`sample_batch`, which train.py initialises the model with, builds each input of every config's model (an image
  config has no data.num_frames)."""
  c = load_config(str(path))
  batch = sample_batch(c)
  assert set(batch) == set(STREAM_INPUTS[c.model.stream])
  s = c.data.image_size
  for x in batch.values():
    assert x.shape[0] == 1 and x.shape[-3:-1] == (s, s) and not x.any()


def test_frames_fold_by_default_and_the_study_keeps_its_published_lift():
  """'auto' lifts frames by folding them into the batch and picks the 1x1 convolutions' form by backend; the
  marked-scene study configs keep nn.vmap and convolutions, with which docs/attention_quality.md was measured (each
  pair differs only in float rounding)."""
  for path in ("configs/synthetic_cbam.py", "configs/ucf101_cbam.py"):
    m = load_config(path).model
    assert (lift_mode(m), m.pointwise) == ("fold", "auto"), path
    assert build_model(_with_classes(m)).rgb.frame.backbone.keywords["pointwise"] == "auto", path
  for path in sorted(pathlib.Path("configs").glob("synthetic_marked_*.py")):
    m = load_config(str(path)).model
    assert (lift_mode(m), m.pointwise) == ("vmap", "conv"), path
    assert build_model(_with_classes(m)).rgb.frame.backbone.keywords["pointwise"] == "conv", path


def _with_classes(m):
  m = m.copy_and_resolve_references()
  m.num_classes = 10
  return m


def test_an_unknown_pointwise_mode_fails_naming_the_choices():
  with pytest.raises((KeyError, ValueError), match="model.pointwise.*dot"):
    check_config(load_config("configs/synthetic_cbam.py:model.pointwise=matmul"))


def test_smoke_and_arguments_apply():
  c = load_config("configs/ucf101_cbam.py:smoke,split=2,stream=rgb,backbone=resnet50_v2,steps=7,lr=0.05")
  assert (c.data.split, c.model.stream, c.model.backbone) == ("2", "rgb", "resnet50_v2")
  assert c.train.num_steps == 7 and isinstance(c.train.num_steps, int)
  assert c.optim.lr == 0.05 and c.train.batch_size == 2
  c = load_config("configs/synthetic_cbam.py:model.fusion_weights=1+3,train.progress=false")
  assert c.model.fusion_weights == (1.0, 3.0) and c.train.progress is False
  c = load_config("configs/synthetic_cbam.py:model.backbone_kwargs.depthwise_impl=grouped")
  assert c.model.backbone_kwargs.depthwise_impl == "grouped"


@pytest.mark.parametrize("arg, match", [
    ("backbone=resnet51_v2", "resnet50_v2"),          # unknown registry name lists the valid ones
    ("attention=cbma", "cbam"),
    ("fusion=max", "average"),
    ("temporal=gru", "lstm"),
    ("stream=depth", "two_stream"),
    ("model.dtype=float16", "bfloat16"),
    ("optim.schedule=step", "inverse_time"),
    ("train.num_stpes=3", "num_steps"),                # misspelt dotted key lists the valid keys
    ("stepz=3", "steps"),                               # unknown shorthand lists the shorthands
    ("smok", "smoke"),                                  # unknown flag
])
def test_bad_names_fail_naming_choices(arg, match):
  with pytest.raises(KeyError, match=match):
    check_config(load_config(f"configs/synthetic_cbam.py:{arg}"))


def test_bad_values_fail():
  with pytest.raises(ValueError, match="train.num_steps"):
    load_config("configs/synthetic_cbam.py:train.num_steps=ten")
  with pytest.raises(ValueError, match="batch_size"):
    check_config(load_config("configs/synthetic_cbam.py:batch=0"))
  with pytest.raises(KeyError, match="thesis"):
    check_config(load_config("configs/synthetic_cbam.py:model.variant=thesys"))
  with pytest.raises(FileNotFoundError, match="synthetic_cbam.py"):
    load_config("configs/no_such.py:smoke")


def test_split_spec_and_parse_arg():
  path, arg = split_spec("configs/ucf101_cbam.py:smoke,split=2")
  assert path.name == "ucf101_cbam.py" and arg == "smoke,split=2"
  assert split_spec("configs/ucf101_cbam.py")[1] is None
  assert args_lib.parse_arg("smoke, split=2 ,a.b=x=y") == ({"smoke"}, {"split": "2", "a.b": "x=y"})


def test_json_round_trip_is_exact():
  c = load_config("configs/hmdb51_gate.py:smoke,fusion=weighted")
  again = config_from_json(config_to_json(c))
  assert again.to_dict() == c.to_dict()
  assert again.is_locked and isinstance(again, ml_collections.ConfigDict)


def test_config_package_imports_no_other_attn_har_package():
  import ast
  for path in (REPO / "attn_har" / "config").glob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
          [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
      for name in names:
        assert not name.startswith("attn_har.") or name.startswith("attn_har.config"), (path.name, name)
