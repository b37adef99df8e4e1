"""`train_and_evaluate(config, workdir)`: the one linear training run.

  1. data: find or build the store (a generated one while 2. compiles), hold out validation, fill
     `model.num_classes`, write `<workdir>/config.json`
  2. model, optimiser, jit-compiled pure steps (the train step as two programs compiled at the same time,
     `train_programs`); mesh over all devices (batch sharded on 'data')
  3. start-up: resume `<workdir>` if it has a checkpoint, else init from `config.init_from` (a Keras ImageNet file,
     other runs' checkpoints), else scratch
  4. loop: step t uses dropout key fold_in(rng, t); metrics every `log_every`; every `checkpoint_every` (and at
     the end) recalibrate BatchNorm statistics (optional, `bn_calibration`), validate and checkpoint state + data
     iterator; a non-finite loss stops the run (no checkpoint of
     the bad state is written, so the last good one stays)
  5. test with the best-by-validation state: clip/video top-1/5, per-class accuracy, confusion matrix, per-stream
     numbers for two-stream models, the post-hoc SVM fusion when configured; `<workdir>/results.json`

A store the run generates (the default synthetic set's first run) is built in a thread, one spawned process,
while the train step is traced and compiled for the batch shapes the loader will give (`train_batch_spec`):
the first step of `python launch.py` with empty caches came 2.0 s sooner (three alternating pairs, steps=2).
results.json's 'timing' records the time to this run's first finished training step and the seconds spent
tracing and compiling (or loading programs from the persistent compilation cache and the program cache, see
`attn_har.compile_cache`, which `launch.py` enables), and whether each step was 'loaded' from the program cache,
'exported' into it or plain 'jit' (`attn_har.train.program_cache`; the train step's two programs as
'a+b' when they differ), and how the initial state was computed
('numpy' or 'compiled': the pruned jaxpr, `attn_har.train.pruned_eval`; 'jit': an approximated initialiser, or
several processes), and whether the store was generated while compiling.
"""

import concurrent.futures
import json
import pathlib
import time
from typing import Any, Dict

import jax
import ml_collections
import orbax.checkpoint as ocp

from attn_har.compile_cache import CompileClock
from attn_har.data.prepare import RunData, classes_of_store_to_generate, eval_protocol, train_batch_spec
from attn_har.models import build_model, sample_batch
from attn_har.train import (bn_calibration, checkpointing, evaluate, metrics_log, program_cache, progress, pruned_eval,
                            run_record, sharding, steps, workdir_lock)
from attn_har.train.check import check_config, keras_file
from attn_har.train.finite import NonFiniteError, state_is_finite
from attn_har.train.optim import make_optimizer
from attn_har.train.schedule import make_schedule
from attn_har.train.train_programs import TrainPrograms


FAST_COMPILE = {"xla_backend_optimization_level": 0}


NonFiniteLossError = NonFiniteError   # the name before the state was checked too


def _log(text: str) -> None:
  if jax.process_index() == 0:
    print(text, flush=True)


def _init_sources(config: ml_collections.ConfigDict):
  f = config.init_from
  sources = []
  if f.workdir:
    sources.append((f.workdir, f.which, ()))
  if f.rgb_workdir:
    sources.append((f.rgb_workdir, f.which, ("rgb",)))
  if f.flow_workdir:
    sources.append((f.flow_workdir, f.which, ("flow",)))
  if (f.rgb_workdir or f.flow_workdir) and config.model.stream != "two_stream":
    raise ValueError("init_from.rgb_workdir / flow_workdir need model.stream='two_stream'")
  return sources


def _initial_state(init_fn, rng, repl) -> tuple[Dict[str, Any], str]:
  """(init_fn(rng) replicated by `repl`, how it ran). One process: the pruned jaxpr evaluated with NumPy ('numpy':
  about 2 s instead of 21 s for the default model's one jitted program, bit-identical values) or, where NumPy has no
  rule, one small program per distinct equation ('compiled', about 9 s); see `pruned_eval`. An approximated
  initialiser (a normal one's erf_inv) or several processes: one jitted program ('jit'), compiled without XLA's
  backend optimisations since it runs once."""
  if jax.process_count() == 1:
    try:
      state, how = pruned_eval.run_pruned(init_fn, rng, compiler_options=FAST_COMPILE, return_how=True)
      return jax.device_put(state, repl), how
    except pruned_eval.Inexact:
      pass
  return jax.jit(init_fn, out_shardings=repl, compiler_options=FAST_COMPILE)(rng), "jit"


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> Dict[str, Any]:
  """Trains, validates, checkpoints and tests `config` in `workdir`; returns the results dict.

  Raises (before any file of the run is written): KeyError / ValueError for a bad config,
  `run_record.ConfigMismatchError` for a relaunch that would change what the workdir's checkpoints mean,
  `workdir_lock.WorkdirLockedError` while another process runs in the workdir. During the run:
  `finite.NonFiniteError` when the loss or the model state stops being finite (nothing non-finite is saved).
  """
  check_config(config)
  # Before the first jax.process_index() below: jax.distributed must start before JAX picks its devices.
  sharding.init_distributed(config.distributed)
  workdir = pathlib.Path(workdir).absolute()
  run_record.check_relaunch(workdir, config)
  lock = workdir_lock.WorkdirLock(workdir) if jax.process_index() == 0 else None
  clock = CompileClock()
  try:
    if lock is not None:
      lock.acquire()
    return _train_and_evaluate(config, workdir, clock)
  finally:
    clock.stop()
    if lock is not None:
      lock.release()


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir, clock: CompileClock) -> Dict[str, Any]:
  t0 = time.time()

  # 1. Data. A store this run generates (the default synthetic set's first run) is built in a thread while 2.
  # traces and compiles the train step (its classes are known from the config), in one spawned process so that
  # the tracing keeps a core. Any other run reads its data first.
  planned = classes_of_store_to_generate(config) if jax.process_count() == 1 else None
  run_data = RunData(config, workdir, log=_log) if planned is None else None
  k = run_data.num_classes if planned is None else len(planned)
  if config.model.num_classes and config.model.num_classes != k:
    where = run_data.location if planned is None else f"the {config.data.dataset} dataset"
    raise ValueError(f"model.num_classes={config.model.num_classes} but {where} has {k} classes")
  config.model.num_classes = k
  diff = run_record.check_relaunch(workdir, config)   # again, now that num_classes is known
  mesh = sharding.make_mesh()
  sharding.check_batch_size(config.train.batch_size, mesh)
  sharding.check_batch_size(config.eval.batch_size, mesh, "eval.batch_size")
  data_thread = None
  if planned is not None:
    data_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="attn_har_data")
    building = data_thread.submit(RunData, config, workdir, _log, build_workers=1)

  # 2. Model, optimiser, steps, devices.
  batch_sharding, repl = sharding.data_sharding(mesh), sharding.replicated(mesh)
  model = build_model(config.model)
  schedule = make_schedule(config.optim, config.train.num_steps)
  tx = make_optimizer(config.optim, schedule)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  # The steps close over the model, optimiser and loss settings, all made from the config: the config names the
  # programs in the program cache (`program_cache`, on with the persistent compilation cache).
  fingerprint = config.to_json_best_effort(sort_keys=True)
  state, init_source = _initial_state(lambda r: steps.init_state(model, tx, r, sample_batch(config)), init_rng, repl)
  train_step = TrainPrograms(model, tx, fingerprint=fingerprint, replicated=repl,
                             stream_loss_weight=config.train.stream_loss_weight,
                             label_smoothing=config.train.label_smoothing)
  eval_step = program_cache.cached_jit(steps.make_eval_step(model), name="eval_step", fingerprint=fingerprint)
  if data_thread is not None:
    train_step.compile_ahead(state, train_batch_spec(config, config.train.batch_size, batch_sharding), train_rng)
    run_data = building.result()
    data_thread.shutdown()
    if run_data.classes != planned:
      raise RuntimeError(f"the generated store {run_data.location} has classes {run_data.classes}, its config "
                         f"{planned}")
  has_val = run_data.has_val
  shard_options = None
  if jax.process_count() > 1:
    import grain
    shard_options = grain.sharding.ShardByJaxProcess(drop_remainder=True)
  put = batch_sharding if jax.process_count() == 1 else None
  train_it = run_data.train(put, shard_options, sharding.local_batch_size(config.train.batch_size))

  def collect(variables, subset):
    # Several processes: each scores its own shard of a clip store's subset on its own device (the batch stays a
    # host array, the state is replicated, the eval step communicates nothing), then all gather every row. An
    # image dataset's loader is not sharded: every process scores the whole subset.
    rows = evaluate.collect(eval_step, variables, run_data.eval(subset, put, shard_options))
    return sharding.gather_rows(rows) if run_data.store is not None else rows

  def run_eval(variables, subset):
    return evaluate.metrics(collect(variables, subset), k)

  # 3. Start-up: resume this workdir, else init from another checkpoint, else scratch.
  manager = checkpointing.make_manager(workdir, keep=config.train.keep_checkpoints, track_best=has_val)
  start = manager.latest_step() or 0
  if jax.process_index() == 0:
    run_record.record_launch(workdir, config, diff, start)
    metrics_log.truncate(workdir, start)   # rows of steps after the last checkpoint are logged again
  writer = metrics_log.MetricWriter(workdir)
  if manager.latest_step() is not None:
    state, start = checkpointing.resume(manager, state, train_it)
    _log(f"resumed {workdir} at step {start}")
  elif _init_sources(config) or config.init_from.keras:
    state, report = jax.device_get(state), []
    if config.init_from.keras:
      frame_paths = {stream: path for stream, (path, _) in model.frame_models().items()}
      state, report = checkpointing.init_from_keras(state, frame_paths, keras_file(config), config.model.backbone)
    if _init_sources(config):
      state, more = checkpointing.init_from(state, _init_sources(config))
      report += more
    state = jax.device_put(state, repl)
    for line in report:
      _log(line)
  else:
    _log(f"training from scratch (seed {config.seed}) into {workdir}")

  # 4. Training loop.
  bar = progress.Progress(config.train.num_steps, start, config.train.progress and jax.process_index() == 0)
  t_loop, steps_run, first_step_seconds = time.time(), 0, None
  checked, finite_so_far = start, None

  def stop(what: str):
    bar.close()
    last = manager.latest_step()
    raise NonFiniteError(
        f"{what}; stopped without validating or saving this state. Last finite checkpoint: "
        f"{'step ' + str(last) if last is not None else 'none'} in {manager.directory}")

  for step in range(start, config.train.num_steps):
    batch = next(train_it) if jax.process_count() == 1 else sharding.shard_batch(next(train_it), batch_sharding)
    state, metrics = train_step(state, batch, train_rng)
    # Accumulated on the device; the host reads it at log and checkpoint steps only (no per-step sync).
    finite_so_far = metrics["finite"] if finite_so_far is None else finite_so_far & metrics["finite"]
    steps_run += 1
    done = step + 1
    if first_step_seconds is None:
      jax.block_until_ready(metrics)
      first_step_seconds = time.time() - t0
      _log(f"first training step done {first_step_seconds:.1f} s after start "
           f"({clock.snapshot()['seconds']:.1f} s compiling)")
    log_now = done % config.train.log_every == 0 or done == config.train.num_steps
    save_now = done % config.train.checkpoint_every == 0 or done == config.train.num_steps
    if not (log_now or save_now):
      bar.update(1)
      continue
    m = jax.device_get(metrics)
    if not (bool(finite_so_far) and state_is_finite(state)):
      when = f"at step {done}" if checked + 1 == done else f"between steps {checked + 1} and {done}"
      stop(f"the training loss or the model state became non-finite {when} (loss at step {done}: {float(m['loss'])})")
    checked, finite_so_far = done, None
    bar.update(1, {"loss": float(m["loss"]), "top1": float(m["top1"])})
    if log_now:
      m.pop("finite")
      m["lr"] = schedule(step)
      m["steps_per_s"] = steps_run / max(time.time() - t_loop, 1e-9)
      writer.write(done, "train", m)
    if save_now:
      if config.train.bn_recalibration_batches:
        calib = run_data.train(put, shard_options, sharding.local_batch_size(config.train.batch_size),
                               seed=config.seed + 1)
        state = bn_calibration.recalibrate(
            train_step, state, (next(calib) for _ in range(config.train.bn_recalibration_batches)), train_rng)
        if not state_is_finite(state):
          stop(f"BatchNorm recalibration at step {done} made the statistics non-finite")
      ckpt_metrics = None
      if has_val:
        v = run_eval(state, "val")
        ckpt_metrics = {"val_top1": v["video"]["top1"], "val_loss": v["clip"]["loss"]}
        writer.write(done, "val", evaluate.summary(v))
        bar.write(f"step {done}: val top1 {v['video']['top1']:.3f} (clip {v['clip']['top1']:.3f})")
      checkpointing.save(manager, done, state, train_it, ckpt_metrics)
  bar.close()
  train_seconds = time.time() - t_loop

  # 5. Test with the best-by-validation checkpoint.
  best = manager.best_step() if has_val else manager.latest_step()
  best = best if best is not None else manager.latest_step()
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  state = manager.restore(best, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]
  test_rows = collect(state, "test")
  test = evaluate.metrics(test_rows, k)
  writer.write(int(best), "test", evaluate.summary(test))
  results = {
      "config": config.name, "workdir": str(workdir), "data": run_data.location, "best_step": int(best),
      "num_steps": config.train.num_steps,
      "test": {"top1": test["video"]["top1"], "top5": test["video"]["top5"], "clip_top1": test["clip"]["top1"],
               "clip_top5": test["clip"]["top5"], "loss": test["clip"]["loss"], "videos": test["video"]["count"]},
      "test_per_class": test["per_class"], "test_confusion": test["confusion"],
      "classes": run_data.classes,
      "protocol": ({s: eval_protocol(config, s) for s in ("test", "val")} if run_data.store is not None else None),
      "train_seconds_this_run": train_seconds, "wall_seconds_this_run": None,
  }
  if test["streams"]:
    results["test_streams"] = {s: {"top1": r["video"]["top1"], "top5": r["video"]["top5"],
                                   "clip_top1": r["clip"]["top1"]} for s, r in test["streams"].items()}
    results["test_streams"]["fused"] = {"top1": test["video"]["top1"], "top5": test["video"]["top5"],
                                        "clip_top1": test["clip"]["top1"]}
  if getattr(model, "post_hoc_svm", False):
    # Fitted on the training videos (scored with the test protocol), never on validation or test videos.
    results["test_svm"] = evaluate.svm_fusion(collect(state, "train"), test_rows, k, c=config.model.svm.c,
                                              max_iter=config.model.svm.max_iter)
    results["test_average"] = dict(results["test"])
    results["test"].update(top1=results["test_svm"]["top1"], top5=results["test_svm"]["top5"])
  results["wall_seconds_this_run"] = time.time() - t0
  compiled = clock.snapshot()
  results["timing"] = {"first_step_seconds": first_step_seconds, "compile_seconds": compiled["seconds"],
                       "backend_compile_seconds": compiled["backend_seconds"],
                       "program_cache_seconds": compiled["program_cache_seconds"],
                       "compile_cache_hits": compiled["cache_hits"],
                       "store_generated_while_compiling": planned is not None,
                       "programs": {"init_state": init_source,
                                    **{p.name: p.source for p in (train_step, eval_step)}}}
  if jax.process_index() == 0:
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
  writer.close()
  manager.close()
  loaded = [p.name for p in (train_step, eval_step) if p.source == "loaded"]
  _log(f"compiling took {compiled['seconds']:.1f} s (summed over programs compiled at the same time) of "
       f"{results['wall_seconds_this_run']:.1f} s: "
       f"{compiled['backend_seconds']:.1f} s in XLA ({compiled['cache_hits']} programs loaded from the persistent "
       f"compilation cache), {compiled['program_cache_seconds']:.1f} s in the program cache (loaded: "
       f"{', '.join(loaded) or 'none'}), the rest tracing and lowering")
  _log(f"test top1 {results['test']['top1']:.4f} top5 {results['test']['top5']:.4f} "
       f"(best step {best}); results in {workdir / 'results.json'}")
  return results
