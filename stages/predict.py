"""Stage ``predict@<model>``: every fold model on its test fold and on the unseen library.

Writes the per-note predictions, the per-fold figures, and the model users get: the
fold models' back ends averaged behind one front end (``models/<model>.keras``).
"""

import argparse
from pathlib import Path

from instrclf import settings, stage
from instrclf.layout import write_json
from instrclf.settings import PredictSettings, SplitSettings

#: The params this stage reads: dvc.yaml lists exactly these.
PARAMS = ("split", "predict")


def parse_args(argv=None):
    """Command-line paths, exactly as dvc.yaml passes them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--model", required=True, help=f"one of {list(settings.MODEL_NAMES)}")
    parser.add_argument("--folds", required=True, help="folder of the fold models, <fold>.keras")
    parser.add_argument("--features", required=True, help="features stage output folder (index.csv + spectrograms)")
    parser.add_argument("--out", required=True, help="per-note predictions, CSV")
    parser.add_argument("--results", required=True, help="per-fold figures, JSON")
    parser.add_argument("--ensemble", required=True, help="the averaged model, .keras (card beside it)")
    return parser.parse_args(argv)


def main(argv=None):
    """Read params, predict with every fold model, write predictions, figures and the ensemble."""
    args = parse_args(argv)

    def work():
        params = settings.load(args.params, keys=PARAMS)
        split, predicting = settings.section(params, SplitSettings), settings.section(params, PredictSettings)
        from instrclf import layout, models, predict  # TensorFlow loads only once the params are good

        paths = {fold: Path(args.folds) / f"{fold}.keras" for fold in split.test_folds}
        out = predict.run(args.model, paths=paths, features_dir=args.features, unseen_library=split.unseen_library,
                          shift_average=predicting.shift_average)
        layout.write_predictions(args.out, out["predictions"])
        write_json(args.results, out["results"])
        models.save(out["model"], args.ensemble, card=out["card"])
        folds = out["results"]["folds"]
        figures = {f"fold{f}_file_accuracy": v["file_accuracy"] for f, v in folds.items()}
        return figures | {k: v for k, v in out["results"].get("ensemble", {}).items() if k in ("unseen_file_accuracy", "unseen_alone_file_accuracy")}

    stage.run(f"predict@{args.model}", work)


if __name__ == "__main__":
    main()
