"""Traced and lowered programs kept across processes with `jax.export`, so a second run skips tracing too.

The persistent compilation cache (`attn_har.compile_cache`) skips XLA's compile of a program it has seen, but
every process still traces the Python function to a jaxpr and lowers it to StableHLO before it can look the
program up: for the default `python launch.py` that was about half of a warm launch's compile phase (26 of 55 s).
`cached_jit(fun, name=..., fingerprint=...)` is `jax.jit(fun)` for one input signature whose first call instead
loads `<compile cache>/programs/<name>-<key>.exported`: the function's StableHLO as exported by `jax.export`
(flat arrays in, flat arrays out) plus the pickled output tree structure. A missing entry is exported and
written; the program that runs is in both cases `jax.jit` of the exported module, so a first and a second
process compile the same module and the second one loads XLA's executable from the persistent cache.

The key hashes everything that determines the program: `name`, the caller's `fingerprint` (it must name every
value `fun` closes over; train.py passes the config JSON), the input tree structure and each input's type and
sharding, the attn_har source files, the jax / jaxlib / flax / optax versions, the devices and the jax flags that
change tracing (x64, matmul precision, PRNG implementation). An entry that cannot be read or does not match its
inputs is ignored and rebuilt; a function `jax.export` cannot export (host callbacks, say) runs as plain
`jax.jit`. Entries are pickles, as trusted as the persistent cache's executables: keep the folder private.
Deleting it is always safe.

The cache is on wherever the persistent compilation cache is (`compile_cache.enable()`: launch.py, the tests);
`--no_compile_cache` or ATTN_HAR_COMPILE_CACHE=off turns both off. Multi-process runs use plain `jax.jit`.
"""

import functools
import hashlib
import importlib.metadata
import os
import pathlib
import pickle
import re
import warnings
from typing import Any, Callable, Optional, Sequence

import jax

from attn_har import compile_cache

FORMAT = 1
SUFFIX = ".exported"
KEEP_PER_NAME = 16   # newest entries kept per program name (older ones are deleted when one is written)
# jax flags that change what a function traces to; the rest of the key is in `program_key`.
TRACE_FLAGS = ("jax_enable_x64", "jax_default_matmul_precision", "jax_default_prng_impl",
               "jax_threefry_partitionable", "jax_numpy_dtype_promotion")
PACKAGES = ("jax", "jaxlib", "flax", "optax")


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
  """sha256 over the attn_har package's .py files (relative path and contents)."""
  root = pathlib.Path(__file__).resolve().parents[1]
  h = hashlib.sha256()
  for path in sorted(root.rglob("*.py")):
    h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
  return h.hexdigest()


def _version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return "-"


def program_key(name: str, fingerprint: str, args: Sequence[Any]) -> str:
  """The hex sha256 naming the program `name` traces to for `args` (see the module docstring)."""
  leaves, tree = jax.tree.flatten(tuple(args))
  parts = [f"format {FORMAT}", name, fingerprint, str(tree),
           *(f"{jax.typeof(x)} {getattr(x, 'sharding', None)}" for x in leaves),
           source_digest(), *(f"{p} {_version(p)}" for p in PACKAGES),
           *(f"{f} {getattr(jax.config, f, None)}" for f in TRACE_FLAGS),
           f"{jax.default_backend()} {jax.device_count()} {jax.devices()[0].device_kind} {jax.process_count()}"]
  return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _entry_path(folder: pathlib.Path, name: str, key: str) -> pathlib.Path:
  return folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}-{key[:40]}{SUFFIX}"


def _export(fun: Callable, name: str, args: Sequence[Any]):
  """(Exported of fun over the flat leaves of args, output treedef)."""
  leaves, in_tree = jax.tree.flatten(tuple(args))
  out_trees = []

  def flat(*flat_args):
    out_leaves, out_tree = jax.tree.flatten(fun(*jax.tree.unflatten(in_tree, flat_args)))
    out_trees.append(out_tree)
    return out_leaves

  flat.__name__ = flat.__qualname__ = name
  exported = jax.export.export(jax.jit(flat))(*leaves)
  return exported, out_trees[-1]


def _store(path: pathlib.Path, key: str, exported, out_tree) -> None:
  payload = pickle.dumps({"format": FORMAT, "key": key, "out_tree": out_tree, "exported": bytes(exported.serialize())})
  tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
  tmp.write_bytes(payload)
  os.replace(tmp, path)


def _prune(folder: pathlib.Path, keep: pathlib.Path) -> None:
  """Deletes all but the KEEP_PER_NAME newest entries with `keep`'s program name."""
  prefix = keep.name[:-len(SUFFIX)].rsplit("-", 1)[0] + "-"
  entries = [p for p in folder.glob(f"*{SUFFIX}") if p.name.startswith(prefix) and p != keep]
  entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
  for old in entries[KEEP_PER_NAME - 1:]:
    old.unlink(missing_ok=True)


def _load(path: pathlib.Path, key: str, args: Sequence[Any]):
  """(Exported, output treedef) from `path`, or None (with a warning) when it is unreadable or does not fit."""
  try:
    entry = pickle.loads(path.read_bytes())
    if entry.get("format") != FORMAT or entry.get("key") != key:
      raise ValueError("written for another program (key or format differs)")
    exported = jax.export.deserialize(bytearray(entry["exported"]))
    leaves = jax.tree.leaves(tuple(args))
    want = [(tuple(x.shape), x.dtype) for x in leaves]
    if [(tuple(a.shape), a.dtype) for a in exported.in_avals] != want:
      raise ValueError("its input shapes differ from this call's")
    return exported, entry["out_tree"]
  except Exception as e:  # pylint: disable=broad-except
    warnings.warn(f"ignoring the unreadable or stale program cache entry {path} ({type(e).__name__}: {e}); "
                  f"rebuilding it", RuntimeWarning)
    return None


class CachedJit:
  """`jax.jit(fun, ...)` whose program is loaded from / saved to the program cache on the first call.

  All calls must share the first call's input structure, types and shardings (one program); a different
  signature raises jax.export's shape error.
  """

  def __init__(self, fun: Callable, *, name: str, fingerprint: str, folder: Optional[pathlib.Path],
               donate_argnums=(), out_shardings=None, compiler_options=None):
    self._fun, self.name, self._fingerprint, self.folder = fun, name, fingerprint, folder
    self._jit_kwargs = dict(donate_argnums=donate_argnums, out_shardings=out_shardings,
                            compiler_options=compiler_options)
    self._jitted = None
    self._ahead = None   # input shapes of `compile_ahead`, until the first call
    self.source = None   # 'loaded' | 'exported' | 'jit' after the first call

  def _plain(self, why: str = ""):
    if why:
      warnings.warn(f"program cache: {self.name} runs as plain jax.jit ({why})", RuntimeWarning)
    self.source = "jit"
    return jax.jit(self._fun, **self._jit_kwargs)

  def _build(self, args):
    if self.folder is None:
      return self._plain()
    with compile_cache.counted_as_compiling():
      key = program_key(self.name, self._fingerprint, args)
      path = _entry_path(self.folder, self.name, key)
      found = _load(path, key, args) if path.exists() else None
      if found is not None:
        exported, out_tree = found
        self.source = "loaded"
      else:
        try:
          exported, out_tree = _export(self._fun, self.name, args)
        except Exception as e:  # pylint: disable=broad-except
          return self._plain(f"jax.export failed: {type(e).__name__}: {e}")
        self.source = "exported"
        try:
          self.folder.mkdir(parents=True, exist_ok=True)
          _store(path, key, exported, out_tree)
          _prune(self.folder, path)
        except (OSError, TypeError, ValueError, pickle.PicklingError) as e:
          warnings.warn(f"program cache: could not write {path} ({type(e).__name__}: {e})", RuntimeWarning)

    def call(*call_args):
      return jax.tree.unflatten(out_tree, exported.call(*jax.tree.leaves(tuple(call_args))))

    call.__name__ = call.__qualname__ = self.name
    return jax.jit(call, **self._jit_kwargs)

  def build_ahead(self, *args) -> None:
    """Traces and exports (or loads) the program for `args` now, without compiling it: arrays, or
    `jax.ShapeDtypeStruct`s with the shardings (and placement) the calls will pass."""
    if self._jitted is None:
      self._jitted = self._build(args)
      self._ahead = _shapes(args)

  def lower_ahead(self, *args) -> jax.stages.Lowered:
    """`build_ahead(*args)`, then the program lowered for `args`; its `.compile()` releases the GIL, so it can run
    on another thread while this one traces something else."""
    self.build_ahead(*args)
    return self._jitted.lower(*args)

  def compile_ahead(self, *args) -> None:
    """`lower_ahead(*args).compile()`. A first call of that signature runs the program without tracing or
    compiling again (`jax.jit`'s own caches); a first call of other shapes warns and builds its own program."""
    self.lower_ahead(*args).compile()

  def __call__(self, *args):
    if self._ahead is not None:
      if _shapes(args) != self._ahead:
        warnings.warn(f"program cache: {self.name} was compiled ahead for other input shapes; building it for "
                      f"those of its first call", RuntimeWarning)
        self._jitted = self._build(args)
      self._ahead = None
    if self._jitted is None:
      self._jitted = self._build(args)
    return self._jitted(*args)


def _shapes(args) -> tuple:
  leaves, tree = jax.tree.flatten(tuple(args))
  return tree, [(tuple(x.shape), str(x.dtype)) for x in leaves]


def cached_jit(fun: Callable, *, name: str, fingerprint: str, donate_argnums=(), out_shardings=None,
               compiler_options=None) -> CachedJit:
  """`jax.jit(fun, donate_argnums=, out_shardings=, compiler_options=)` through the program cache.

  Args:
    fun: a pure function of arrays (pytrees).
    name: the program's name (file names, logs); one name per distinct function.
    fingerprint: text naming everything `fun` closes over (e.g. the config JSON): part of the key.
  """
  folder = compile_cache.program_dir() if jax.process_count() == 1 else None
  return CachedJit(fun, name=name, fingerprint=fingerprint, folder=folder, donate_argnums=donate_argnums,
                   out_shardings=out_shardings, compiler_options=compiler_options)
