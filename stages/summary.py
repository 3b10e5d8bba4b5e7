"""Stage ``summary``: per model, mean and standard deviation across the folds.

Writes one flat metrics file per model into ``--out`` (replaced as a whole, so a model
dropped from ``train.models`` disappears from ``dvc metrics show``).
"""

import argparse
from pathlib import Path

from instrclf import settings, stage
from instrclf.io import atomic_dir
from instrclf.layout import read_json, write_json
from instrclf.settings import SplitSettings, TrainSettings
from instrclf.summary import summarise

#: The params this stage reads: dvc.yaml lists exactly these.
PARAMS = ("train.models", "split.test_folds")


def parse_args(argv=None):
    """Command-line paths, exactly as dvc.yaml passes them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--results", required=True, help="folder with predict/<model>.json and train/<model>/<fold>.json")
    parser.add_argument("--out", required=True, help="folder of <model>.json summaries")
    return parser.parse_args(argv)


def main(argv=None):
    """Read every model's per-fold figures and write its summary."""
    args = parse_args(argv)

    def work():
        params = settings.load(args.params, keys=PARAMS)
        names = TrainSettings.key(params, "models")
        folds = SplitSettings.key(params, "test_folds")
        results = Path(args.results)
        summaries = {
            name: summarise(
                read_json(results / "predict" / f"{name}.json"),
                {f: read_json(results / "train" / name / f"{f}.json") for f in folds},
                folds=folds,
            )
            for name in names
        }
        with atomic_dir(args.out) as out:
            for name, summary in summaries.items():
                write_json(out / f"{name}.json", summary)
        return {name: s["file_accuracy_mean"] for name, s in summaries.items()}

    stage.run("summary", work)


if __name__ == "__main__":
    main()
