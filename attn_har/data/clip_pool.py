"""The per-clip pre-processing job and the pool of spawned processes that runs it (`store_build.build_store`).

  run_pool(specs, workers, (source, settings, out, threads, max_decode_bytes), on_result)

Each worker builds its flow solver once (`_init_worker`), then `process_clip` decodes (or generates) one clip,
keeping only the stored frames (`stacking.store_frames`) and the video frames of the flow pairs their stacks need
(`stacking.required_video_pairs`, each pair once), computes and quantises that flow and writes the clip atomically
(`store_write.write_clip`) with the video frame index of every stored frame (`frame_indices`) and of both ends of
every pair (`pairs`). A clip that fails is reported, never raised; a worker that dies fails only the clips in
flight; a clip with fewer than 2 decodable frames (or, pairing 'video_frames', fewer than L + 1) fails. Workers
die with their parent (Linux: PR_SET_PDEATHSIG), so a SIGKILLed pre-processing command leaves no orphan process
computing flow.
"""

import concurrent.futures as cf
import ctypes
from concurrent.futures.process import BrokenProcessPool
import multiprocessing
import os
import signal
import sys
from typing import Callable, Dict, List

import cv2
import numpy as np

from attn_har.data import datasets, flow, quantize, stacking, store_write


_WORKER: Dict[str, object] = {}
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
  """Asks the kernel to SIGKILL this process when its parent dies (Linux; elsewhere a no-op), and exits at once
  when the parent is already gone."""
  parent = multiprocessing.parent_process()
  if parent is None or not sys.platform.startswith("linux"):
    return
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
  except (OSError, AttributeError):
    return
  if os.getppid() != parent.pid:  # the parent died before prctl took effect
    os._exit(1)


def _init_worker(dataset, settings: dict, out: str, threads: int, max_decode_bytes: int) -> None:
  """Per-process set-up: die with the parent, ignore SIGINT (the parent handles it), build the flow solver once."""
  if multiprocessing.parent_process() is not None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
  cv2.setNumThreads(threads)
  _WORKER.update(dataset=dataset, settings=settings, out=out, max_decode_bytes=max_decode_bytes,
                 solver=flow.make_solver(settings["flow"]))


def process_clip(spec: datasets.ClipSpec) -> tuple:
  """Pre-processes one clip in a worker; returns ('ok', entry) or ('error', id, path, message)."""
  cfg = _WORKER["settings"]
  plan = {}

  def select(n: int) -> np.ndarray:
    if n < 2:
      raise ValueError(f"{spec.path or spec.id}: only {n} decodable frame; optical flow needs at least 2 "
                       "(replace the file or drop it from the split)")
    try:
      rows = stacking.store_frames(n, cfg["frames"], cfg["length"], cfg["pairing"])
    except ValueError as e:
      raise ValueError(f"{spec.path or spec.id}: {e}") from None
    pairs = stacking.required_video_pairs(rows, n, cfg["length"], cfg["stacking"], cfg["pairing"],
                                          cfg["bidirectional"])
    plan.update(rows=rows, pairs=pairs)
    return np.union1d(rows, pairs.ravel())

  try:
    frames, masks, n, kept = _WORKER["dataset"].load(spec, select, cfg["size"], _WORKER["max_decode_bytes"])
    rows, pairs = plan["rows"], plan["pairs"]
    at = lambda video_frames: np.searchsorted(kept, video_frames)   # kept is sorted and unique
    fields = flow.compute_pairs(_WORKER["solver"], frames, at(pairs))
    arrays = {"rgb": frames[at(rows)], "flow": quantize.quantize(fields, cfg["clip_px"]), "pairs": pairs,
              "frame_indices": rows.astype(np.int32)}
    if masks is not None:
      arrays["mask"] = masks[at(rows)]
    meta = {"label": spec.label, "num_frames": n, "frame_indices": rows.tolist(),
            "source": spec.path if spec.path is not None else f"synthetic:{spec.index}", "preprocess": cfg}
    return ("ok", store_write.write_clip(_WORKER["out"], spec.id, arrays, meta))
  except Exception as e:  # pylint: disable=broad-except  (a bad clip must not stop the others)
    return ("error", spec.id, spec.path, f"{type(e).__name__}: {e}")


def _terminate(executor: cf.ProcessPoolExecutor) -> None:
  for proc in list(getattr(executor, "_processes", {}).values()):
    proc.terminate()
  executor.shutdown(wait=False, cancel_futures=True)


def run_pool(specs: List[datasets.ClipSpec], workers: int, initargs: tuple, on_result: Callable[[tuple], None]):
  """Runs `process_clip` over `specs` with at most `workers` clips in flight.

  A worker that dies (e.g. a crash inside a decoder) fails only the clips in flight; a fresh pool continues.
  """
  if workers <= 0:
    _init_worker(*initargs)
    for spec in specs:
      on_result(process_clip(spec))
    return
  todo = list(reversed(specs))
  ctx = multiprocessing.get_context("spawn")
  while todo:
    executor = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=initargs)
    running: Dict[cf.Future, datasets.ClipSpec] = {}
    try:
      broken = False
      while (todo or running) and not broken:
        while todo and len(running) < workers:
          spec = todo.pop()
          running[executor.submit(process_clip, spec)] = spec
        done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
        for fut in done:
          spec = running.pop(fut)
          try:
            on_result(fut.result())
          except BrokenProcessPool:
            broken = True
            on_result(("error", spec.id, spec.path, "worker process died while processing this clip (or one "
                       "beside it); re-run with --workers 1 to isolate"))
      for fut, spec in running.items():  # in flight when the pool broke
        on_result(("error", spec.id, spec.path, "worker process died while this clip was in flight"))
      executor.shutdown(wait=True)
    except BaseException:
      _terminate(executor)
      raise
