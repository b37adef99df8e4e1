"""Analysis of trained models: restore, attention maps and Grad-CAM, figures, attention quality.

Modules:
  restore        `restore(workdir, which='best') -> Restored(config, model, variables, step, workdir)`.
  maps           per-stream frame models (`stream_views`), attention maps per stage, Grad-CAM (`explain`).
  combine        resize to the input, NaN-safe min-max per map, average.
  overlay        heat-map overlays on frames; optical flow as a Middlebury colour-coded field.
  figures        the stage-grid PNG (thesis Tables 6.2/6.3), clip GIF/MP4, training curves PNG.
  quality        pointing game, energy inside the mask, deletion/insertion AUC, centre-bias/uniform/random maps.
  quality_table  the quality table over models, streams and methods (markdown + JSON).
  clips          evaluation clips of a run's store (with masks) or a clip file.

`restore` is imported here; it imports the config and training packages only when called.
"""

from attn_har.analysis.restore import Restored, restore

__all__ = ["Restored", "restore"]
