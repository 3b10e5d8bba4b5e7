"""Stage train@<model>: fit one model on the clean windows of the training folds."""

import argparse
import sys

from instrclf import models, params
from instrclf.errors import InstrclfError
from instrclf.io import write_json
from instrclf.train import run


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--model", required=True, help=f"one of {sorted(models.REGISTRY)}")
    parser.add_argument("--clean", required=True, help="clean stage output folder (index.csv + windows)")
    parser.add_argument("--out", required=True, help="trained model, .keras (its .json metadata goes beside it)")
    parser.add_argument("--metrics", required=True, help="training summary JSON")
    parser.add_argument("--live", required=True, help="dvclive folder for per-epoch curves")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        model, meta, metrics = run(params.load(args.params), name=args.model, clean_dir=args.clean, live_dir=args.live)
        models.save(model, args.out, meta=meta)
        write_json(args.metrics, metrics)
    except InstrclfError as exc:
        sys.exit(f"error: {exc}")
    print(", ".join(f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
