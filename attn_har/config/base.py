"""The fields every config has (model, optimiser, training, evaluation, start-up): `base_config()`.

`attn_har.config.video` and `attn_har.config.image` add a `data` section and their defaults on top.
"""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Fields shared by image and video configs (model, optimiser, training, evaluation, start-up)."""
  c = ml_collections.ConfigDict()
  c.name = ""
  c.seed = 0
  c.model = ml_collections.ConfigDict(dict(
      stream="image",              # 'image' | 'rgb' | 'flow' | 'two_stream'
      temporal="average",          # TEMPORAL_MODELS key (video streams only)
      frame_consensus="softmax",   # temporal='average': mean of the frames' 'softmax' scores (S&Z) or 'logits' (TSN)
      backbone="mobilenet_v2",
      attention="none",            # ATTENTION key, 'none' = plain backbone
      variant="paper",
      alpha=1.0,                   # MobileNetV2 width multiplier
      dtype="float32",             # compute dtype: 'float32' | 'bfloat16' (parameters stay float32)
      num_classes=0,               # 0 = from the data
      fusion="average",            # FUSIONS key (two-stream only)
      fusion_weights=(1.0, 2.0),   # ('rgb', 'flow') for fusion='weighted'
      lift="auto",                 # 'auto' | 'vmap' | 'fold' (attn_har.models.lift)
      pointwise="auto",            # backbone 1x1 convs: 'auto' | 'dot' | 'conv' (attn_har.layers.pointwise)
      lstm=dict(hidden=512, num_layers=3, dropout=0.5, readout="last"),
      pool=dict(hidden=128, dropout=0.0),
      svm=dict(c=1.0, max_iter=10000),  # fusion='svm': LinearSVC (Crammer & Singer) C and iterations
      backbone_kwargs=ml_collections.ConfigDict(),  # extra keyword arguments of build_image_model
  ))
  c.optim = ml_collections.ConfigDict(dict(
      name="sgd", lr=0.1, momentum=0.9, nesterov=False,
      schedule="inverse_time",     # lr_t = lr / (1 + decay_rate * t), Keras SGD(decay=1e-4) per step
      decay_rate=1e-4,
      warmup_steps=0, end_lr_fraction=0.0,  # for 'cosine' (and warm-up before any schedule)
      weight_decay=0.0,            # decoupled, added to the gradient (SGD) or AdamW
      grad_clip_norm=0.0,          # 0 = off
      skip_nonfinite_updates=False,  # skip steps whose gradient is NaN/inf (optax.apply_if_finite)
  ))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=64, num_steps=1000, log_every=10, checkpoint_every=200, keep_checkpoints=2,
      stream_loss_weight=1.0,      # two-stream: loss = CE(fused) + w * mean_s CE(stream s)
      label_smoothing=0.0,
      progress=True,
      bn_recalibration_batches=0,  # >0: recalibrate BatchNorm statistics before each validation (bn_calibration)
  ))
  # The test protocol (video): each of a video's clips_per_video x crops views holds `frames` frames; the video's
  # score averages the softmax scores of its views (and a FrameAverage stream's of its frames). Validation during
  # training has its own, usually cheaper, protocol (val_*). `batch_size` counts views.
  c.eval = ml_collections.ConfigDict(dict(
      batch_size=32,
      frames=0,                    # frames per view, uniformly spaced over the valid stacks; 0 = data.num_frames
      clips_per_video=1,           # temporal views (evenly offset positions)
      crops=1,                     # 1 centre, 3 along the long side, 10 = 4 corners + centre, each also flipped
      crop_fraction=0.875,         # 10-crop square side / short side (S&Z: 224 of 256)
      val_frames=0,                # validation: 0 = data.num_frames
      val_clips_per_video=0,       # validation: 0 = clips_per_video
      val_crops=1,
      best_metric="top1",          # best checkpoint by validation top-1, ties by lower loss
  ))
  c.init_from = ml_collections.ConfigDict(dict(
      workdir="", which="best",    # initialise from another run's checkpoint (skipped parameters are named)
      rgb_workdir="", flow_workdir="",  # two-stream: streams from separately trained stream-only runs
      keras="",                    # Keras ImageNet weight file (.h5 path, or 'imagenet' = ~/.keras/models/<Keras's
                                   # name>) into every stream's backbone; flow: TSN cross-modality (keras_weights)
  ))
  # Multi-process (multi-host) data parallelism: `attn_har.train.sharding.init_distributed`.
  c.distributed = ml_collections.ConfigDict(dict(
      enabled=False, coordinator_address="", num_processes=1, process_id=0,
      local_device_ids=(),         # this process's devices (empty: all), e.g. (i,) for one process per GPU
  ))
  return c
