"""Video models: per-frame image models lifted over time, temporal aggregation, and the two-stream model.

Modules (import them directly):
  lifted         `lift`: a per-frame module applied to [B, T, ...] with nn.vmap or by folding T.
  temporal_pool  `FrameAverage` (mean of per-frame logits), `TemporalAttentionPool` (soft attention over frames).
  lstm           `CNNLSTM` (Yue-Hei Ng et al. 2015).
  two_stream     `TwoStream` (Simonyan & Zisserman 2014): 'rgb', 'flow' and 'fusion' sub-modules.
  fusion         `FUSIONS` (average, weighted, learned, svm) and the post-hoc linear SVM.
  registry       `VIDEO_MODELS`: the per-stream temporal models by name.
"""
