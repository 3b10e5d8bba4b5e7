"""Stage ``plot``: ROC and confusion plot data for ``dvc plots show``, and images.

Every note of the seen libraries is tested exactly once across the folds, so the curves
and matrices use all of them.
"""

import argparse
from pathlib import Path

from instrclf import figures, layout, plots, settings, stage
from instrclf.io import atomic_dir, write_json
from instrclf.settings import TrainSettings
from instrclf.summary import read_json


def parse_args(argv=None):
    """Command-line paths, exactly as dvc.yaml passes them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--predictions", required=True, help="folder of <model>.csv from predict")
    parser.add_argument("--results", required=True, help="folder of <model>.json per-fold figures from predict")
    parser.add_argument("--out", required=True, help="plot data folder: roc.json, roc_classes/, confusion/")
    parser.add_argument("--images", required=True, help="folder of PNG images: <model>.png and comparison.png")
    parser.add_argument("--page", required=True, help="the offline HTML template `dvc plots show` uses")
    return parser.parse_args(argv)


def main(argv=None):
    """Read every model's predictions and write plot data and images."""
    args = parse_args(argv)

    def work():
        names = settings.section(settings.load(args.params), TrainSettings).models
        loaded, folds, unseen = {}, {}, {}
        for name in names:
            table, labels = layout.read_predictions(Path(args.predictions) / f"{name}.csv")
            loaded[name] = (table[table["set"] == "test"].reset_index(drop=True), labels)
            per_fold = read_json(Path(args.results) / f"{name}.json")["folds"]
            folds[name] = [v["file_accuracy"] for v in per_fold.values()]
            unseen[name] = [v["unseen_file_accuracy"] for v in per_fold.values() if "unseen_file_accuracy" in v]
        with atomic_dir(args.out) as out, atomic_dir(args.images) as images:
            rows = []
            for name, (table, labels) in loaded.items():
                rows += plots.roc_rows(table, labels=labels, series=name)
                write_json(out / "roc_classes" / f"{name}.json", plots.class_roc_rows(table, labels=labels), indent=None)
                write_json(out / "confusion" / f"{name}.json", plots.confusion_rows(table), indent=None)
                figures.save_figure(figures.model_figure(table, labels=labels, model=name), images / f"{name}.png")
            write_json(out / "roc.json", rows, indent=None)
            comparison = figures.comparison_figure(loaded, fold_accuracy=folds, unseen_accuracy=unseen)
            figures.save_figure(comparison, images / "comparison.png")
        plots.write_html_template(args.page)
        return {"models": len(loaded), "notes": sum(len(t) for t, _ in loaded.values())}

    stage.run("plot", work)


if __name__ == "__main__":
    main()
