"""Training: one linear `train.train_and_evaluate(config, workdir)` and the pieces it uses.

Modules (import them directly; nothing is imported here):
  schedule       `SCHEDULES`: learning-rate schedules (the thesis's Keras inverse-time decay, cosine, constant).
  optim          `OPTIMIZERS`: SGD with Keras momentum semantics, AdamW.
  steps          pure `train_step` / `eval_step`.
  sharding       device mesh and batch / replicated shardings; multi-host initialisation.
  checkpointing  Orbax checkpoints (model state + data iterator), resume, init-from, `restore_state`.
  evaluate       clip- and video-level top-1/top-5, per-class accuracy, confusion matrix.
  metrics_log    JSON lines + TensorBoard (tensorboardX) metric writer.
  progress       a progress bar with rate and ETA.
  train          `train_and_evaluate(config, workdir)`.
"""
