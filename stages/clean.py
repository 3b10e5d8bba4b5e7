"""Stage ``clean``: cut every raw note into fixed-length mono windows.

Reads ``data.target`` and ``clean.*`` from params.yaml, writes the windows and
``index.csv`` (``--out``), the flat metrics (``--metrics``) and the threshold-tuning
image (``--threshold-plot``).
"""

import argparse
import sys

from instrclf import clean
from instrclf.audio import CleanConfig
from instrclf.errors import InstrclfError
from instrclf.io import write_json
from instrclf.params import get, load


def parse_args(argv=None):
    """Command-line paths, exactly as dvc.yaml passes them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="params.yaml")
    parser.add_argument("--raw", required=True, help="download's output: TinySOL_metadata.csv + audio/")
    parser.add_argument("--out", required=True, help="folder of windows + index.csv (replaced on success)")
    parser.add_argument("--metrics", required=True, help="flat JSON metrics")
    parser.add_argument("--threshold-plot", required=True, help="PNG: waveform, envelope and threshold per class")
    return parser.parse_args(argv)


def main(argv=None):
    """Validate params, clean the raw set, write metrics and the threshold image."""
    args = parse_args(argv)
    try:
        params = load(args.params)
        config = CleanConfig.from_params(params)
        target = clean.check_target(get(params, "data.target"))
        metrics = clean.run(args.raw, args.out, config=config, target=target)
        clean.plot_threshold(args.raw, args.threshold_plot, config=config, target=target)
        write_json(args.metrics, metrics)
    except InstrclfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(", ".join(f"{key} {value}" for key, value in metrics.items()))


if __name__ == "__main__":
    main()
