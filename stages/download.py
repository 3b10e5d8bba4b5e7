"""Stage ``download``: build data/raw (TinySOL's metadata CSV + audio/<Path>) from data.source.

Usage: python stages/download.py --params params.yaml --out data/raw
"""

import argparse
import sys

from instrclf import params as params_io
from instrclf import sources
from instrclf.errors import InstrclfError


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line paths; dvc.yaml passes every one of them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file (reads seed and data.*)")
    parser.add_argument("--out", default="data/raw", help="the raw folder, replaced only on success")
    return parser.parse_args(argv)


def report(stats: dict, *, out) -> None:
    """Print the source's figures, one ``key: value`` per line."""
    print(f"download: wrote {out}")
    for key, value in stats.items():
        print(f"  {key}: {value}")


def main(argv=None) -> None:
    """Read params, fetch the configured source into ``--out``, print what was done."""
    args = parse_args(argv)
    try:
        params = params_io.load(args.params)
        stats = sources.fetch(params, args.out)
    except InstrclfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    report(stats, out=args.out)


if __name__ == "__main__":
    main()
