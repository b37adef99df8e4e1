"""Two-stream MobileNetV2, CBAM, on the marked synthetic scene (thesis §4.3, §5.5).

The 'marked' scene (attn_har/data/synthetic.py): the actor is identified by its appearance (a striped cross) among
distractors that move like actors of random classes, under a camera pan, so motion magnitude alone does not find it.
Inputs are 72x72 (late attention stage 3x3). Part of the attention-quality study (python -m attn_har.study).
Run:      python launch.py --config=configs/synthetic_marked_cbam.py --workdir=runs/synthetic_marked_cbam
Smoke:    python launch.py --config=configs/synthetic_marked_cbam.py:smoke --workdir=/tmp/synthetic_marked_cbam
Args:     as configs/synthetic_cbam.py (the recipe: configs/_synthetic.py, marked_recipe)
Expected: test top-1 of each seed and its mean: docs/attention_quality.md (written by the study).
Runtime:  wall time of each run: docs/attention_quality.md (2-core CPU, no GPU).
"""

from _synthetic import synthetic_config


def get_config(arg=None):
  return synthetic_config("cbam", arg, marked=True)
