"""What ``predict.shift_average`` does to the same fold models: each value's figures, side by side.

``predict@<model>``'s own routine (:func:`instrclf.predict.run`) on a run's fold models and
features, once per value of ``--values``: the models are those of the run, so the table
isolates the averaging over shifted spectra from training's randomness. Per model and value:
the test folds' file accuracy (mean of the five), the fold models' on the held-out library
(mean) and the ensemble's on it, set-coloured and notes alone, and the seconds it took.

    python benchmarks/shift_average.py --values 0 1 2      # after dvc repro: models/folds, data/features

Writes ``--out`` (JSON) and prints a markdown table. Reads only; the run's outputs are untouched.
"""

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

from machine import cpu_model, version  # benchmarks/machine.py (the script's folder is on sys.path)

from instrclf import settings
from instrclf.layout import write_json
from instrclf.settings import SplitSettings


def figures(results: dict) -> dict:
    """The flat figures of one :func:`instrclf.predict.run`'s ``results``."""
    folds = results["folds"].values()
    return {
        "test_file_accuracy": round(statistics.mean(f["file_accuracy"] for f in folds), 4),
        "unseen_file_accuracy": round(statistics.mean(f["unseen_file_accuracy"] for f in folds), 4),
        "ensemble_unseen_file_accuracy": round(results["ensemble"]["unseen_file_accuracy"], 4),
        "ensemble_unseen_alone_file_accuracy": round(results["ensemble"]["unseen_alone_file_accuracy"], 4),
    }


def table(rows: list) -> str:
    """Markdown: one row per (value, model)."""
    lines = ["| `predict.shift_average` | model | test folds | held out, fold models | held out, ensemble | notes alone | seconds |",
             "|--:|:--|--:|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(f"| {r['shift_average']} | {r['model']} | {r['test_file_accuracy']:.3f} | {r['unseen_file_accuracy']:.3f} | "
                     f"{r['ensemble_unseen_file_accuracy']:.3f} | {r['ensemble_unseen_alone_file_accuracy']:.3f} | {r['seconds']} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--folds", default="models/folds", help="the train@ stages' output: <model>/<fold>.keras")
    parser.add_argument("--features", default="data/features", help="the features stage's output")
    parser.add_argument("--models", nargs="+", default=list(settings.MODEL_NAMES), choices=settings.MODEL_NAMES)
    parser.add_argument("--values", nargs="+", type=int, default=[0, 1, 2], help="predict.shift_average values")
    parser.add_argument("--out", default="benchmarks/results/shift_average.json")
    args = parser.parse_args(argv)
    if any(v < 0 for v in args.values):
        parser.error("--values must be >= 0")

    from instrclf import predict  # TensorFlow after the arguments

    split = settings.section(settings.load(args.params), SplitSettings)
    rows = []
    for model in args.models:
        paths = {fold: Path(args.folds) / model / f"{fold}.keras" for fold in split.test_folds}
        for value in args.values:
            start = time.perf_counter()
            out = predict.run(model, paths=paths, features_dir=args.features, unseen_library=split.unseen_library,
                              shift_average=value)
            rows.append({"model": model, "shift_average": value, **figures(out["results"]),
                         "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps(rows[-1]), flush=True)
    write_json(args.out, {
        "command": "python benchmarks/shift_average.py --models " + " ".join(args.models)
                   + " --values " + " ".join(map(str, args.values)),
        "machine": {"cpu": cpu_model(), "python": platform.python_version(), "tensorflow": version("tensorflow")},
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "runs": rows,
    })
    print(table(rows))


if __name__ == "__main__":
    main()
