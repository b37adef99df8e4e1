"""Analysis of trained models: restore, attention maps and Grad-CAM, figures, attention quality.

Modules:
  restore        `restore(workdir, which='best') -> Restored(config, model, variables, step, workdir)`.
  maps           per-stream frame models (`stream_views`), attention maps per stage, Grad-CAM (`explain`).
  combine        resize to the input, NaN-safe min-max per map, average.
  overlay        heat-map overlays on frames; optical flow as a Middlebury colour-coded field.
  figures        the stage-grid PNG (thesis Tables 6.2/6.3), clip GIF/MP4, training curves PNG.
  quality        pointing game, energy inside the mask, deletion/insertion AUC, centre-bias/uniform/random maps.
  baselines      reference maps from the input: flow magnitude, frame difference, location prior.
  road           ROAD (remove and debias): noisy linear imputation, MoRF / LeRF curves.
  stats          clip-level bootstrap intervals, clustered SE, paired differences, across-seed spread.
  sanity         the model-parameter randomisation check (cascading re-initialisation, Spearman, SSIM, plot).
  quality_table  per-frame scores of every map method of a run, per stream (`evaluate_run`).
  quality_report the quality table from those scores: intervals, paired differences, seeds, per class (md + JSON).
  sanity_report  the randomisation check of every map method of runs (md + JSON + plots).
  clips          evaluation clips of a run's store (with masks) or a clip file.

`restore` is imported here; it imports the config and training packages only when called.
"""

from attn_har.analysis.restore import Restored, restore

__all__ = ["Restored", "restore"]
