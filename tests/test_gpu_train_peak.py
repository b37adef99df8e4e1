"""The GPU benchmark's profile summary: kernel busy time and kernel-time shares from a jax.profiler perfetto trace."""

import gzip
import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_train_peak  # noqa: E402  (a script in benchmarks/)


def _write_trace(folder: pathlib.Path, events: list) -> None:
  path = folder / "plugins" / "profile" / "run"
  path.mkdir(parents=True)
  with gzip.open(path / "perfetto_trace.json.gz", "wt") as f:
    json.dump({"traceEvents": events}, f)


def test_summary_counts_stream_kernels_once(tmp_path):
  meta = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/device:GPU:0"}},
          {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/host:CPU"}},
          {"ph": "M", "name": "thread_name", "pid": 1, "tid": 5, "args": {"name": "Stream #13(Compute)"}},
          {"ph": "M", "name": "thread_name", "pid": 1, "tid": 6, "args": {"name": "XLA Ops"}}]
  kernels = [{"ph": "X", "pid": 1, "tid": 5, "ts": 0, "dur": 300, "name": "sm90_xmma_fprop_implicit_gemm"},
             {"ph": "X", "pid": 1, "tid": 5, "ts": 200, "dur": 100, "name": "loop_add_fusion"},   # overlaps
             {"ph": "X", "pid": 1, "tid": 5, "ts": 500, "dur": 100, "name": "input_reduce_fusion"},
             {"ph": "X", "pid": 1, "tid": 6, "ts": 0, "dur": 1000, "name": "fusion.1"},   # the op line: not kernels
             {"ph": "X", "pid": 2, "tid": 6, "ts": 0, "dur": 1000, "name": "host work"}]
  _write_trace(tmp_path, meta + kernels)
  s = gpu_train_peak.summarize_trace(str(tmp_path), wall_s=1000e-6)
  assert s["busy"] == pytest.approx(0.4)          # kernels cover [0, 300] and [500, 600] of 1000 us
  assert s["conv/matmul"] == pytest.approx(0.6)   # 300 of 500 us of kernel time
  assert s["other"] == pytest.approx(0.4)
  assert s["top"][0] == ("sm90_xmma_fprop_implicit_gemm", pytest.approx(0.6))


def test_summary_without_device_lines_is_empty_of_kernels(tmp_path):
  _write_trace(tmp_path, [{"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/host:CPU"}},
                          {"ph": "X", "pid": 2, "tid": 1, "ts": 0, "dur": 5, "name": "host work"}])
  assert "busy" not in gpu_train_peak.summarize_trace(str(tmp_path), wall_s=1.0)
  assert gpu_train_peak.summarize_trace(str(tmp_path / "missing"), wall_s=1.0) == {}
