"""Stage ``download``: build data/raw (TinySOL's metadata CSV + audio/<Path>) from data.source.

Usage: python stages/download.py --params params.yaml --out data/raw --checksums data/raw.sha256
"""

import argparse

from instrclf import settings, sources, stage

#: The params this stage reads: dvc.yaml lists exactly these (``data.target`` is clean's and train's).
PARAMS = ("seed", "data.source", "data.tinysol", "data.soundfont", "data.local")


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line paths; dvc.yaml passes every one of them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file (reads seed and data)")
    parser.add_argument("--out", required=True, help="the raw folder, replaced only on success")
    parser.add_argument("--checksums", help="where to write the raw folder's sha256sum list (clean's dependency)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    """Read params once, fetch the configured source into ``--out``, print one summary line."""
    args = parse_args(argv)

    def work() -> dict:
        params = settings.load(args.params, keys=PARAMS)
        data = settings.section(params, settings.SourceSettings)
        return sources.fetch(data, seed=settings.seed(params), out_dir=args.out, checksums=args.checksums)

    stage.run("download", work)


if __name__ == "__main__":
    main()
