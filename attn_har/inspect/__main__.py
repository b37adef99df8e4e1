"""Prints a model-complexity table: parameters and FLOPs at 224x224x3, K = 100, beside the thesis's numbers.

  python -m attn_har.inspect --table thesis    # the thesis's 12 models (tables 5.1-5.2)
  python -m attn_har.inspect --table paper     # the attention modules as their papers define them (Δ vs thesis)

Everything is traced, nothing computed: about a minute on a 2-core CPU for the 12 thesis models.
"""

import argparse
import sys

from attn_har.inspect.table import TABLES, format_table, measure
from attn_har.registry import lookup


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m attn_har.inspect", description=__doc__.splitlines()[0])
  parser.add_argument("--table", default="thesis", choices=sorted(TABLES), help="which table (default: thesis)")
  parser.add_argument("--only", default=None, help="only rows whose name contains this text")
  args = parser.parse_args(argv)
  table = lookup(TABLES, args.table, "table")
  names = [name for name in table if args.only is None or args.only in name]
  if not names:
    parser.error(f"--only {args.only!r} matches no model of table {args.table!r}: {', '.join(table)}")
  rows = [measure(name, table[name]) for name in names]
  print(format_table(rows))
  return 0


if __name__ == "__main__":
  sys.exit(main())
