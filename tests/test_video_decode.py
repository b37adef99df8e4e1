"""Decoding (every frame, RGB, errors that name the file) and frame sampling."""

import subprocess

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from attn_har.data import decode, sampling

CLIPS = {  # relative to realdata: decoded frame count (README facts; HMDB headers claim one more)
    "hmdb51/videos/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi": 408,
    "hmdb51/videos/climb_stairs/Increase_stride_length_by_running_stairs__working_step_over_action_speed_"
    "development_climb_stairs_f_cm_np1_le_med_1.avi": 74,
    "ucf101/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": 164,
}


@pytest.mark.parametrize("rel", sorted(CLIPS))
def test_known_frame_counts(realdata, rel):
  frames = decode.read_frames(realdata / rel)
  assert frames.shape == (CLIPS[rel], 240, 320, 3) and frames.dtype == np.uint8
  assert decode.count_frames(realdata / rel) == CLIPS[rel]
  if rel.startswith("hmdb51"):
    assert decode.header_frame_count(realdata / rel) == CLIPS[rel] + 1


def test_frames_are_rgb(realdata):
  path = str(realdata / sorted(CLIPS)[-1])
  cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
  ok, bgr = cap.read()
  cap.release()
  assert ok
  rgb = decode.read_frames(path)[0]
  np.testing.assert_array_equal(rgb, bgr[..., ::-1])
  assert np.abs(rgb[..., 0].astype(int) - rgb[..., 2]).mean() > 1  # not grey, so the order matters


def test_every_realdata_clip_decodes(realdata):
  paths = sorted(p for ext in ("*.avi", "*.mp4") for p in realdata.rglob(ext))
  assert len(paths) >= 16
  for path in paths:
    frames = decode.read_frames(path)
    assert frames.ndim == 4 and frames.shape[-1] == 3 and len(frames) >= 40, path
    assert 10 < frames.mean() < 245, path  # real content, not black or white frames
  demo = decode.read_frames(realdata / "misc" / "mmaction2" / "test.mp4")  # H.264
  assert demo.shape == (300, 256, 340, 3)


def _writable_fourccs(tmp_path):
  out = []
  for fourcc in ("avc1", "mp4v"):
    w = cv2.VideoWriter(str(tmp_path / f"probe_{fourcc}.mp4"), cv2.VideoWriter_fourcc(*fourcc), 25, (64, 64))
    if w.isOpened():
      out.append(fourcc)
    w.release()
  return out


def test_generated_1080p_mp4_decodes(tmp_path):
  fourccs = _writable_fourccs(tmp_path)
  assert "mp4v" in fourccs  # this OpenCV build writes MPEG-4 part 2; 'avc1' (H.264) only with an encoder
  path = tmp_path / "clip1080.mp4"
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourccs[0]), 25, (1920, 1080))
  yy, xx = np.mgrid[0:1080, 0:1920]
  for t in range(10):
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[..., 0] = (xx + 40 * t) % 256          # blue ramp moving right (BGR)
    frame[..., 2] = 200                          # strong red
    frame[..., 1] = (yy // 4) % 256
    writer.write(frame)
  writer.release()
  frames = decode.read_frames(path)
  assert frames.shape == (10, 1080, 1920, 3)
  assert abs(frames[..., 0].mean() - 200) < 8    # red is channel 0 after BGR -> RGB
  small = decode.read_frames(path, size=(240, 320))
  assert small.shape == (10, 240, 320, 3)
  sampled, n = decode.read_sampled_frames(path, lambda n: sampling.uniform_indices(n, 4), size=(240, 320))
  assert n == 10
  np.testing.assert_array_equal(sampled, small[[0, 2, 5, 7]])


def test_generated_1080p_h264_decodes(tmp_path):
  """A 1080p H.264 (libx264, yuv420p) MP4, encoded by the ffmpeg binary that imageio-ffmpeg ships."""
  ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
  path = tmp_path / "clip1080_h264.mp4"
  yy, xx = np.mgrid[0:1080, 0:1920]
  frames = np.zeros((8, 1080, 1920, 3), np.uint8)
  for t in range(len(frames)):
    frames[t, ..., 0] = 200                       # strong red (RGB input)
    frames[t, ..., 1] = (yy // 4) % 256
    frames[t, ..., 2] = (xx + 40 * t) % 256
  cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "1920x1080",
         "-r", "25", "-i", "-", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
  subprocess.run(cmd, input=frames.tobytes(), check=True)
  probe = subprocess.run([ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
  assert "h264" in probe and "1920x1080" in probe
  decoded = decode.read_frames(path)
  assert decoded.shape == (8, 1080, 1920, 3)
  assert abs(decoded[..., 0].mean() - 200) < 8    # channel order is RGB
  assert np.abs(decoded[..., 2].astype(int) - frames[..., 2]).mean() < 12


def _corrupt(src, dst):
  data = bytearray(src.read_bytes())
  rng = np.random.default_rng(0)
  for i in range(20000, len(data), 997):
    data[i] = int(rng.integers(256))
  dst.write_bytes(bytes(data))


BAD = {
    "corrupt": _corrupt,
    "truncated": lambda src, dst: dst.write_bytes(src.read_bytes()[:200000]),
    "empty": lambda src, dst: dst.write_bytes(b""),
    "text": lambda src, dst: dst.write_text("this is not a video\n"),
    "jpeg": lambda src, dst: dst.write_bytes((src.parents[3] / "misc/mmaction2/imgs/img_00001.jpg").read_bytes()),
    "zeroed_header": lambda src, dst: dst.write_bytes(bytes(4096) + src.read_bytes()[4096:]),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_files_raise_naming_the_file(realdata, tmp_path, kind):
  src = realdata / sorted(CLIPS)[-1]
  dst = tmp_path / f"bad_{kind} (copy)!.avi"
  BAD[kind](src, dst)
  with pytest.raises(decode.VideoDecodeError, match=r"bad_\w+ \(copy\)!\.avi"):
    decode.read_frames(dst)
  with pytest.raises(ValueError, match="copy"):  # VideoDecodeError is a ValueError
    decode.count_frames(dst)


def test_missing_file_raises(tmp_path):
  with pytest.raises(decode.VideoDecodeError, match="not found.*nothing.avi"):
    decode.read_frames(tmp_path / "nothing.avi")


def test_resize_cover_keeps_aspect():
  frame = np.zeros((240, 426, 3), np.uint8)
  frame[:, 53:373] = 255                 # the central 320 columns
  out = decode.resize_cover(frame, (240, 320))
  assert out.shape == (240, 320, 3) and out.min() == 255
  tall = decode.resize_cover(np.zeros((480, 320, 3), np.uint8), (240, 320))
  assert tall.shape == (240, 320, 3)
  up = decode.resize_cover(np.full((120, 100, 3), 7, np.uint8), (240, 320))
  assert up.shape == (240, 320, 3) and (up == 7).all()


def test_uniform_indices():
  np.testing.assert_array_equal(sampling.uniform_indices(100, 25), np.arange(25) * 4)
  idx = sampling.uniform_indices(164, 25)
  np.testing.assert_array_equal(idx, [k * 164 // 25 for k in range(25)])
  short = sampling.uniform_indices(10, 25)
  assert short.min() == 0 and short.max() == 9 and (np.diff(short) >= 0).all()
  assert np.bincount(short).min() >= 2  # every frame of a short clip is used, repeats allowed
  with pytest.raises(ValueError, match="N=0"):
    sampling.uniform_indices(0, 25)


def test_segment_indices():
  n, t = 164, 25
  starts = np.arange(t) * n // t
  ends = np.arange(1, t + 1) * n // t
  draws = np.stack([sampling.segment_indices(n, t, np.random.default_rng(s)) for s in range(200)])
  assert ((draws >= starts) & (draws < ends)).all()
  # Every position of the first segment is drawn (uniform within segments).
  assert set(draws[:, 0]) == set(range(starts[0], ends[0]))
  np.testing.assert_array_equal(sampling.segment_indices(n, t, np.random.default_rng(3)), draws[3])
  short = sampling.segment_indices(5, 8, np.random.default_rng(0))
  assert short.max() <= 4 and (np.diff(short) >= 0).all()
  centres = sampling.segment_centres(n, t)
  assert ((centres >= starts) & (centres < ends)).all()
  with pytest.raises(TypeError, match="Generator"):
    sampling.segment_indices(n, t, 0)
