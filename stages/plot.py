"""Stage `plot`: ROC and confusion plot data for DVC, and images, for every model's predictions."""

import argparse
import sys
from pathlib import Path

from instrclf import params
from instrclf.errors import InstrclfError, ParameterError
from instrclf.evaluate import read_predictions
from instrclf.io import atomic_dir
from instrclf.plots import comparison_figure, model_figure, save_figure, write_plot_data


def parse_args(argv=None):
    """Paths of the inputs and outputs, as dvc.yaml passes them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (reads train.models)")
    parser.add_argument("--predictions", required=True, help="folder of <model>.csv from predict")
    parser.add_argument("--roc", required=True, help="output folder of <model>.json ROC rows")
    parser.add_argument("--confusion", required=True, help="output folder of <model>.json confusion rows")
    parser.add_argument("--images", required=True, help="output folder of <model>.png figures")
    parser.add_argument("--comparison", required=True, help="output PNG comparing all models")
    return parser.parse_args(argv)


def run(args) -> None:
    """Read each model's predictions and write its plot data and figures."""
    models = params.get(params.load(args.params), "train.models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise ParameterError(f"train.models must be a non-empty list of names, got {models!r}")
    loaded = {m: read_predictions(Path(args.predictions) / f"{m}.csv") for m in models}
    with atomic_dir(args.roc) as roc, atomic_dir(args.confusion) as confusion, atomic_dir(args.images) as images:
        for model, (predictions, labels) in loaded.items():
            write_plot_data(
                predictions, labels=labels, roc_path=roc / f"{model}.json", confusion_path=confusion / f"{model}.json"
            )
            save_figure(model_figure(predictions, labels=labels, model=model), images / f"{model}.png")
        save_figure(comparison_figure(loaded), args.comparison)


def main(argv=None) -> None:
    """Entry point: run the stage, turning project errors into one line on stderr."""
    args = parse_args(argv)
    try:
        run(args)
    except InstrclfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
