"""The attention-quality study: every mechanism and the vanilla model x several seeds, trained, scored, written up.

  plan = study_plan('marked', seeds=(0, 1, 2))       # [Run(model, seed, config, workdir name)], 6 models x 3 seeds
  train_runs(plan, root, log)                        # python launch.py per run; a run with results.json is done
  score_runs(plan, root, settings, log)              # quality_table.evaluate_run per run -> <root>/scores/<run>.pkl

Every part skips what a previous launch finished, and a killed training run resumes from its checkpoint, so the
study continues where it stopped. Each finished piece of work appends {part, run, seconds} to
<root>/study_log.jsonl; the study's wall time is their sum over all launches. `attn_har.analysis.study_doc` writes
the report from these files; `python -m attn_har.study` runs everything.
"""

import dataclasses
import json
import pathlib
import pickle
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Sequence

MODELS = ("baseline", "l2pa", "gate", "gate_grid", "residual", "cbam")
SCENES = {"marked": "synthetic_marked", "motion": "synthetic"}
REPO = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of the study: `configs/<config>.py:seed=<seed>` into `<root>/<name>`."""
  model: str
  seed: int
  config: str

  @property
  def name(self) -> str:
    return f"{self.config}_seed{self.seed}"


def study_plan(scene: str = "marked", seeds: Sequence[int] = (0, 1, 2), models: Sequence[str] = MODELS
               ) -> List[Run]:
  """The runs of one scene ('marked' or 'motion'), seed-major: every model's first seed before any second seed, so a
  study cut short still compares all models."""
  if scene not in SCENES:
    raise KeyError(f"unknown scene {scene!r}; valid: {sorted(SCENES)}")
  unknown = sorted(set(models) - set(MODELS))
  if unknown:
    raise KeyError(f"unknown models {unknown}; valid: {list(MODELS)}")
  return [Run(m, int(s), f"{SCENES[scene]}_{m}") for s in seeds for m in models]


def log_part(root: pathlib.Path, part: str, run: str, seconds: float, **extra) -> None:
  """Appends one finished piece of work to <root>/study_log.jsonl."""
  with open(pathlib.Path(root) / "study_log.jsonl", "a") as f:
    f.write(json.dumps({"part": part, "run": run, "seconds": round(seconds, 1), "time": time.time(), **extra}) + "\n")


def read_log(root: pathlib.Path) -> List[Dict[str, Any]]:
  """Every entry of <root>/study_log.jsonl (empty when there is none)."""
  path = pathlib.Path(root) / "study_log.jsonl"
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_runs(plan: Sequence[Run], root: pathlib.Path, log: Callable[[str], None] = print,
               python: str = sys.executable, config_arg: str = "", launcher: pathlib.Path = REPO / "launch.py"
               ) -> None:
  """Trains every run of `plan` that has no results.json yet, one `launch.py` process each.

  config_arg: more config arguments after the seed (e.g. 'smoke' for a quick check of the mechanics).

  A failed run stops the study with the launch's exit status and its log file named; re-running resumes it.
  """
  root = pathlib.Path(root)
  (root / "logs").mkdir(parents=True, exist_ok=True)
  for i, run in enumerate(plan):
    workdir = root / run.name
    if (workdir / "results.json").exists():
      continue
    log(f"[{i + 1}/{len(plan)}] training {run.name}")
    t0 = time.time()
    out = root / "logs" / f"{run.name}.log"
    with open(out, "a") as f:
      arg = f"seed={run.seed}" + (f",{config_arg}" if config_arg else "")
      rc = subprocess.call([python, str(launcher), f"--config={REPO / 'configs' / run.config}.py:{arg}",
                            f"--workdir={workdir}"], stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    if rc != 0 or not (workdir / "results.json").exists():
      raise RuntimeError(f"training {run.name} failed (exit status {rc}); its output: {out}. Re-run the study to "
                         f"resume it from its last checkpoint.")
    log_part(root, "train", run.name, time.time() - t0)


def score_path(root: pathlib.Path, run: Run) -> pathlib.Path:
  return pathlib.Path(root) / "scores" / f"{run.name}.pkl"


def score_runs(plan: Sequence[Run], root: pathlib.Path, settings: Mapping[str, Any],
               log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
  """`quality_table.evaluate_run(workdir, **settings)` for every run, cached in <root>/scores/; returns them all."""
  from attn_har.analysis import quality_table  # pylint: disable=import-outside-toplevel
  results = []
  for i, run in enumerate(plan):
    path = score_path(root, run)
    if path.exists():
      with open(path, "rb") as f:
        cached = pickle.load(f)
      if cached["settings"] == dict(settings):
        results.append(cached["result"])
        continue
      log(f"rescoring {run.name}: its scores were made with other settings")
    log(f"[{i + 1}/{len(plan)}] scoring {run.name}")
    t0 = time.time()
    result = quality_table.evaluate_run(pathlib.Path(root) / run.name, log=log, **settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
      pickle.dump({"settings": dict(settings), "result": result}, f)
    tmp.replace(path)
    log_part(root, "score", run.name, time.time() - t0)
    results.append(result)
  return results


def test_accuracy(plan: Sequence[Run], root: pathlib.Path) -> Dict[str, Dict[int, Dict[str, float]]]:
  """{model: {seed: {'fused': top1, 'rgb': top1, 'flow': top1}}} from each run's results.json."""
  out: Dict[str, Dict[int, Dict[str, float]]] = {}
  for run in plan:
    r = json.loads((pathlib.Path(root) / run.name / "results.json").read_text())
    row = {"fused": r["test"]["top1"]}
    row.update({s: v["top1"] for s, v in r.get("test_streams", {}).items() if s != "fused"})
    row["wall_seconds"] = r.get("wall_seconds_this_run")
    out.setdefault(run.model, {})[run.seed] = row
  return out
