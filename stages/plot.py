"""Stage ``plot``: plot data for ``dvc plots show``, images, and the offline page.

Every note of the seen libraries is tested exactly once across the folds, so the curves,
matrices and breakdowns of the test notes use all of them; the held-out library's notes are
each predicted once, by the ensemble of the fold models.
"""

import argparse
from pathlib import Path

from instrclf import figures, layout, plots, settings, stage
from instrclf.drawing import save_figure
from instrclf.io import atomic_dir
from instrclf.layout import read_json, write_json
from instrclf.settings import SplitSettings, TrainSettings

#: The params this stage reads: dvc.yaml lists exactly these.
PARAMS = ("train.models", "split.test_folds")

#: Note sets of a predictions table -> the prefix of their breakdown files.
SETS = {"test": "test", "unseen": "unseen"}


def parse_args(argv=None):
    """Command-line paths, exactly as dvc.yaml passes them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--predictions", required=True, help="folder of <model>.csv from predict")
    parser.add_argument("--results", required=True, help="folder of <model>.json per-fold figures from predict")
    parser.add_argument("--metadata", required=True, help="the raw layout's metadata CSV (pitch, dynamics, instrument)")
    parser.add_argument("--train", required=True, help="dvclive folders of the trainings, <model>/<fold>/")
    parser.add_argument("--out", required=True, help="plot data folder: roc.json, roc_classes/, confusion/, training/, breakdown/")
    parser.add_argument("--images", required=True, help="folder of PNG images: <model>.png and comparison.png")
    parser.add_argument("--page", required=True, help="the offline HTML template `dvc plots show` uses")
    return parser.parse_args(argv)


def main(argv=None):
    """Read every model's predictions and curves and write plot data and images."""
    args = parse_args(argv)

    def work():
        params = settings.load(args.params, keys=PARAMS)
        names = TrainSettings.key(params, "models")
        test_folds = SplitSettings.key(params, "test_folds")
        details = layout.read_note_details(args.metadata)
        loaded, tables, folds, unseen = {}, {}, {}, {}
        for name in names:
            table, labels = layout.read_predictions(Path(args.predictions) / f"{name}.csv")
            tables[name] = plots.with_details(table, details)
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
                curves = {f: layout.read_live_curves(Path(args.train) / name / str(f)) for f in test_folds}
                write_json(out / "training" / f"{name}.json", plots.training_rows(curves), indent=None)
                save_figure(figures.model_figure(table, labels=labels, model=name), images / f"{name}.png")
            write_json(out / "roc.json", rows, indent=None)
            for subset, prefix in SETS.items():
                chosen = {name: t[t["set"] == subset] for name, t in tables.items()}  # none held out: empty plots
                for by in (b for b in plots.BREAKDOWNS if subset == "test" or b != "library"):  # one held-out library
                    write_json(out / "breakdown" / f"{prefix}_{by}.json", plots.breakdown_table(chosen, by=by), indent=None)
                pairs = [row for name, t in chosen.items() for row in plots.confused_pairs(t, series=name)]
                write_json(out / "breakdown" / f"{prefix}_pairs.json", pairs, indent=None)
            comparison = figures.comparison_figure(loaded, fold_accuracy=folds, unseen_accuracy=unseen)
            save_figure(comparison, images / "comparison.png")
        plots.write_html_template(args.page)
        return {"models": len(loaded), "notes": sum(len(t) for t, _ in loaded.values())}

    stage.run("plot", work)


if __name__ == "__main__":
    main()
