"""Train and evaluate one experiment.

  python launch.py                                   # the default: configs/synthetic_cbam.py, a two-stream
                                                     # MobileNetV2 + CBAM on generated data, into a printed workdir
  python launch.py --config=configs/ucf101_cbam.py:smoke,split=2,store=STORE --workdir=runs/x

--config is `<file>.py[:args]`; the file's get_config(args) returns an ml-collections ConfigDict that is locked
and checked (registry names, misspelt keys, ranges) before any work. Re-running the same command resumes from the
workdir's latest checkpoint; a relaunch may change only settings that keep the checkpoints' meaning (more steps,
evaluation, logging; `attn_har.train.run_record`), and one workdir holds one live run at a time (run.lock). The
workdir gets config.json, launches.jsonl, checkpoints/, metrics.jsonl, tb/ and results.json.

Compiled programs are kept in the persistent compilation cache (`attn_har.compile_cache`, under the attn_har
cache folder) and the traced train / eval / init steps in the program cache beside it (`<cache>/xla/programs`,
`attn_har.train.program_cache`), so a second run of the same model neither traces nor compiles them again;
`--no_compile_cache` or ATTN_HAR_COMPILE_CACHE=off turns both off (ATTN_HAR_COMPILE_CACHE=DIR moves both).
"""

import argparse
import sys

from attn_har import xla_cpu

xla_cpu.configure()  # before jax starts: malloc and CPU dispatch settings (attn_har.xla_cpu, ATTN_HAR_MALLOC)

from attn_har.config.loader import DEFAULT_CONFIG, load_config, split_spec  # noqa: E402
from attn_har.config.paths import default_workdir  # noqa: E402


def parse_flags(argv):
  p = argparse.ArgumentParser(prog="python launch.py", description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  p.add_argument("--config", default=DEFAULT_CONFIG, help=f"config file[:args] (default {DEFAULT_CONFIG})")
  p.add_argument("--workdir", default="", help="run directory (default: <cache>/runs/<config>[-<args>])")
  p.add_argument("--print_config", action="store_true", help="print the resolved config and exit")
  p.add_argument("--no_compile_cache", action="store_true",
                 help="do not use the persistent compilation cache nor the program cache (attn_har.compile_cache)")
  return p.parse_args(argv)


def main(argv=None) -> int:
  flags = parse_flags(argv)
  try:
    path, arg = split_spec(flags.config)
    config = load_config(flags.config)
    from attn_har.train.check import check_config
    check_config(config)
  except (FileNotFoundError, KeyError, ValueError, TypeError, AttributeError) as e:
    print(f"error: bad --config {flags.config!r}: {e}", file=sys.stderr)
    return 2
  if flags.print_config:
    print(config)
    return 0
  workdir = flags.workdir or str(default_workdir(path.stem, arg))
  print(f"config {path}{':' + arg if arg else ''}; workdir {workdir}", flush=True)
  if not flags.no_compile_cache:
    from attn_har import compile_cache
    where = compile_cache.enable()
    print(f"compilation cache: {where or 'off'}", flush=True)
  from attn_har.train.finite import NonFiniteError
  from attn_har.train.run_record import RunRecordError
  from attn_har.train.train import train_and_evaluate
  from attn_har.train.workdir_lock import WorkdirLockedError
  try:
    train_and_evaluate(config, workdir)
  except (RunRecordError, WorkdirLockedError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except (OSError, NonFiniteError) as e:   # a missing store, a read-only or full disk, a non-finite run
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
