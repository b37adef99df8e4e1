"""Training: one linear `train.train_and_evaluate(config, workdir)` and the pieces it uses.

Modules (import them directly; nothing is imported here):
  schedule       `SCHEDULES`: learning-rate schedules (the thesis's Keras inverse-time decay, cosine, constant).
  optim          `OPTIMIZERS`: SGD with Keras momentum semantics, AdamW.
  steps          pure `train_step` / `eval_step`.
  sharding       device mesh and batch / replicated shardings; multi-host initialisation.
  checkpointing  Orbax checkpoints (model state + data iterator), resume, init-from, `restore_state`.
  evaluate       clip- and video-level top-1/top-5, per-class accuracy, confusion matrix; `topk_correct`.
  metrics_log    JSON lines + TensorBoard (tensorboardX) metric writer; each step once after a restart.
  finite         non-finite guards: `NonFiniteError`, `state_is_finite`.
  run_record     config.json + launches.jsonl; refuses relaunches that change what the checkpoints mean.
  workdir_lock   one live run per workdir (run.lock).
  check          `check_config`: every config section, before any work.
  bn_calibration BatchNorm statistics recalibration.
  progress       a progress bar with rate and ETA.
  train          `train_and_evaluate(config, workdir)`.
"""
