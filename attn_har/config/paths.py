"""Default locations outside the repository: the cache for generated data and default run directories.

`ATTN_HAR_CACHE` overrides the cache root (default `$XDG_CACHE_HOME/attn_har`, else `~/.cache/attn_har`).
"""

import os
import pathlib


def cache_root() -> pathlib.Path:
  """The cache root for generated stores and default workdirs."""
  env = os.environ.get("ATTN_HAR_CACHE")
  if env:
    return pathlib.Path(env).expanduser()
  xdg = os.environ.get("XDG_CACHE_HOME")
  return (pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache") / "attn_har"


def default_workdir(config_name: str, arg: str | None) -> pathlib.Path:
  """`<cache>/runs/<config name>[-<arg>]`, with the argument made file-name safe."""
  tag = config_name + (("-" + "".join(c if c.isalnum() or c in "._=-" else "_" for c in arg)) if arg else "")
  return cache_root() / "runs" / tag
