"""Figures and attention quality of trained runs.

  python -m attn_har.analyze --workdir W [--workdir W2 ...] [--clip PATH] --out DIR
      stage_grid.png (rows: model x stream x {attention, Grad-CAM}; columns: combined, early, medium, late stage),
      clip_overlay.gif (per-frame overlays of both streams; flow colour-coded) and curves.png (loss and top-1,
      train and validation, from metrics.jsonl). With several workdirs the per-run files get the model name.
  python -m attn_har.analyze --quality --workdir W [--workdir W2 ...] [--sanity] --out DIR
      quality.md and quality.json (`attn_har.analysis.quality_report`): pointing game, energy inside the
      ground-truth mask, deletion / insertion AUC and ROAD for every attention mechanism, Grad-CAM, Guided
      Grad-CAM and the reference maps (flow magnitude, frame difference, location prior, centre bias, uniform,
      random), with clip-bootstrap intervals, paired differences to the best reference, per-class rows and
      static clips apart. Workdirs of one config with different seeds are pooled as seeds of one model; pass a
      vanilla run (attention none) for the post-hoc Grad-CAM comparator. With --sanity also sanity.md/.json/.png:
      the model-parameter randomisation test of every map method.

Compiled programs go to the persistent compilation cache (`attn_har.compile_cache`; `--no_compile_cache` or
ATTN_HAR_COMPILE_CACHE=off turns it off), so a second analysis of the same runs skips most compilation.
"""

import argparse
import sys
import time


def parse_flags(argv):
  p = argparse.ArgumentParser(prog="python -m attn_har.analyze", description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  p.add_argument("--workdir", action="append", required=True, help="training run directory (repeatable)")
  p.add_argument("--out", required=True, help="output directory")
  p.add_argument("--clip", default="", help="clip file (.npz from a clip store, or a video); default: the first "
                                            "clip of --subset of each run's store")
  p.add_argument("--which", default="best", choices=("best", "latest"), help="checkpoint to restore")
  p.add_argument("--subset", default="test", choices=("train", "val", "test"), help="store subset to read")
  p.add_argument("--frames", type=int, default=0, help="frames per clip (default: 8 for figures, the run's "
                                                       "data.num_frames for --quality)")
  p.add_argument("--format", default="gif", choices=("gif", "mp4"), help="clip overlay format")
  p.add_argument("--quality", action="store_true", help="write the attention-quality table instead of figures")
  p.add_argument("--clips", type=int, default=20, help="--quality: clips per run (0 = all)")
  p.add_argument("--perturb_per_clip", type=int, default=1, help="--quality: frames per clip scored by "
                                                                 "deletion / insertion")
  p.add_argument("--perturb_clips", type=int, default=0, help="--quality: clips (spread evenly) that get the "
                 "deletion / insertion / ROAD curves (0 = all)")
  p.add_argument("--steps", type=int, default=16, help="--quality: deletion / insertion steps")
  p.add_argument("--seed", type=int, default=0, help="--quality: random-map, tie-breaking and bootstrap seed")
  p.add_argument("--prior_clips", type=int, default=100, help="--quality: training clips whose masks make the "
                                                              "location prior (0 = no prior)")
  p.add_argument("--static_px", type=float, default=0.25, help="--quality: actor motion (px per frame) below "
                                                                "which a clip is static")
  p.add_argument("--no_guided", action="store_true", help="--quality: skip Guided Grad-CAM")
  p.add_argument("--no_road", action="store_true", help="--quality: skip ROAD")
  p.add_argument("--sanity", action="store_true", help="--quality: also run the parameter-randomisation check")
  p.add_argument("--sanity_frames", type=int, default=8, help="--sanity: frames per stream")
  p.add_argument("--no_compile_cache", action="store_true",
                 help="do not use the persistent compilation cache (attn_har.compile_cache)")
  return p.parse_args(argv)


def run_quality(flags) -> int:
  from attn_har.analysis import quality_report, quality_table  # pylint: disable=import-outside-toplevel
  runs, meta = [], {"which": flags.which, "subset": flags.subset, "steps": flags.steps, "seed": flags.seed,
                    "perturb_per_clip": flags.perturb_per_clip, "perturb_clips": flags.perturb_clips or "all", "static_px": flags.static_px,
                    "road_fractions": [] if flags.no_road else list(quality_table.ROAD_FRACTIONS), "runs": []}
  for workdir in flags.workdir:
    t0 = time.time()
    r = quality_table.evaluate_run(workdir, flags.which, flags.subset, flags.clips or None, flags.frames or None,
                                   flags.perturb_per_clip, flags.steps, flags.seed, flags.prior_clips or 0,
                                   flags.static_px, not flags.no_guided,
                                   () if flags.no_road else quality_table.ROAD_FRACTIONS,
                                   perturb_clips=flags.perturb_clips or None)
    runs.append(r)
    meta["runs"].append({"model": r["model"], "seed": r["seed"], "workdir": str(workdir), "step": r["step"],
                         "clips": r["clips"], "static_clips": int(sum(r["static"])), "frames": r["frames"],
                         "mean_mask_area": round(r["mask_area"], 4), "seconds": round(time.time() - t0, 1)})
  rows = quality_report.table_rows(runs, flags.seed)
  paths = quality_report.write_table(rows, flags.out, meta)
  print(paths["markdown"].read_text())
  print(f"wrote {paths['markdown']} and {paths['json']}")
  if flags.sanity:
    from attn_har.analysis import sanity_report  # pylint: disable=import-outside-toplevel
    for key, path in sanity_report.write_sanity(flags.workdir, flags.out, flags.which, flags.subset,
                                                flags.sanity_frames, flags.seed).items():
      print(f"{key}: {path}")
  return 0


def main(argv=None) -> int:
  flags = parse_flags(argv)
  from attn_har import xla_cpu  # pylint: disable=import-outside-toplevel
  xla_cpu.configure()  # before jax is imported (attn_har.xla_cpu)
  if flags.frames < 0 or flags.clips < 0 or flags.steps < 1 or flags.perturb_per_clip < 0:
    print("error: --frames, --clips and --perturb_per_clip must be >= 0 and --steps >= 1", file=sys.stderr)
    return 2
  if not flags.no_compile_cache:
    from attn_har import compile_cache  # pylint: disable=import-outside-toplevel
    compile_cache.enable()
  try:
    if flags.quality:
      return run_quality(flags)
    from attn_har.analysis.report import write_report  # pylint: disable=import-outside-toplevel
    paths = write_report(flags.workdir, flags.out, flags.clip or None, flags.which, flags.subset,
                         flags.frames or 8, flags.format)
  except (FileNotFoundError, KeyError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  for key, path in paths.items():
    print(f"{key}: {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
