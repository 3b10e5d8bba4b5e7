"""How many notes of a new library (your own recordings) are worth putting into training? The few-shot curve.

A library the models never heard stands in for your recordings (``--library``, FluidR3_GM by
default: it shares no samples with the training libraries). For K notes per instrument of it
(``--shots``, 0 2 5 10 20), one fold model (test fold ``--fold``, the next fold validating, the
other three training, as in the ``train@`` stage) is trained on the training folds of the
other libraries plus those K x 14 notes, with two weightings:

- ``weight 1``: the new notes' windows are drawn like every other window;
- ``balanced``: ``train.library_weights`` gives the new library the weight that makes its
  draws per epoch equal the mean of the other libraries' (its windows are drawn that many
  times more often).

Accuracy is measured per note (mean of its window probabilities, each window scored as the
user model scores it: ``predict.shift_average``; ``rest_accuracy_one_view`` is the rest scored
without that averaging, by the same fold models) on the rest of the library:
every note of it whose instrument and pitch are not among the K picked ones (a picked note's
other dynamics are left out too), and on one common set, the notes left by the largest K, so
that the points of the curve are measured on the same notes. The test fold of the training
libraries is reported beside it (does the new library cost the others anything?).

The K notes per instrument are drawn with the params' seed; the picks are nested (K=5's notes
include K=2's). Training is the stage's own routine (:func:`instrclf.train.fit`) with the
recipe of ``models.<name>`` and ``train.*``, ``train.library_colour`` included (every library,
the new one too, brought to the colouring of the libraries that train); K=0 is exactly the stage's fold model, so its
figure equals that fold's ``unseen_file_accuracy`` in ``results/predict/<model>.json``.

    python benchmarks/few_shot.py --features data/features --metadata data/raw/TinySOL_metadata.csv \\
        --models conv2d lstm --shots 0 2 5 10 20
    python benchmarks/few_shot.py --models conv2d --shots 10 --weightings balanced --folds 0 1 2 3 4 \\
        --out benchmarks/results/few_shot_ensemble.json      # the five fold models and their mean

With several ``--folds`` each point trains one fold model per fold (each on its own training
folds plus the same picked notes) and the rest of the library is classified by the mean of
their probabilities, as ``models/<model>.keras`` classifies; each fold's own figure is kept.

Reads the features stage's output (run ``dvc repro features`` first, with the library among
``data.soundfont.libraries``); writes ``--out`` (JSON) and prints a markdown table. Not a
test: 18 trainings, about an hour on 2 cores.
"""

import argparse
import json
import platform
import time
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from machine import cpu_model, version  # benchmarks/machine.py (the script's folder is on sys.path)

from instrclf import colour, data, layout, settings
from instrclf.layout import write_json
from instrclf.settings import CleanSettings, FeatureSettings, PredictSettings

WEIGHTINGS = ("weight 1", "balanced")


def pick_notes(notes: pd.DataFrame, *, shots: int, seed: int) -> pd.DataFrame:
    """``shots`` notes per instrument of ``notes`` (one row per note), nested over ``shots`` for one ``seed``."""
    rng = np.random.default_rng(seed)
    picked = []
    for _, group in notes.sort_values("Path").groupby("instrument", sort=True):
        order = rng.permutation(len(group))  # the same permutation whatever ``shots``: nested picks
        picked.append(group.iloc[order[:shots]])
    return pd.concat(picked, ignore_index=True) if picked else notes.iloc[:0]


def rest_of(notes: pd.DataFrame, picked: pd.DataFrame) -> pd.DataFrame:
    """The notes that share neither a path nor an (instrument, pitch) with a picked one."""
    taken = set(zip(picked["instrument"], picked["pitch"], strict=True))
    keep = [(i, p) not in taken for i, p in zip(notes["instrument"], notes["pitch"], strict=True)]
    return notes[keep]


def balancing_weight(train_rows: pd.DataFrame, library: str) -> float:
    """The weight that draws ``library``'s windows as often as the mean other library's."""
    counts = train_rows["library"].value_counts()
    others = counts.drop(library)
    return float(others.mean() / counts[library])


def coloured(cache, train_rows, *, degree):
    """``take(rows)``: the spectrograms of ``rows``, each library at the colouring of the libraries of ``train_rows``
    (``train.library_colour`` ``degree``, as the train stage reads them; None: as they are)."""
    if degree is None:
        return cache.take
    spectra = cache.library_spectra()
    shifts = colour.shifts(spectra, degree=degree, target=colour.reference(spectra, set(train_rows["library"]), degree))
    return lambda rows: cache.select(rows, shifts=shifts).read(np.arange(len(rows)))


def window_probs(score, x):
    """The probabilities of spectrograms ``x`` by ``score`` (:func:`instrclf.models.scorer`)."""
    return score.predict(x, batch_size=settings.INFERENCE_BATCH, verbose=0)


def note_accuracy(probs, rows, labels) -> float:
    """Per-note accuracy: mean window probabilities per note, argmax (:func:`instrclf.evaluate.aggregate`)."""
    from instrclf import evaluate

    if rows.empty:
        return float("nan")
    table = evaluate.aggregate(rows.reset_index(drop=True), probs, labels=labels, subset="unseen")
    return float((table["label"] == table["predicted"]).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="data/features", help="the features stage's output")
    parser.add_argument("--metadata", default="data/raw/TinySOL_metadata.csv", help="the raw set's metadata (pitches)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--library", default="FluidR3_GM", help="the stand-in for recordings never heard")
    parser.add_argument("--models", nargs="+", default=["conv2d", "lstm"], choices=settings.MODEL_NAMES)
    parser.add_argument("--shots", nargs="+", type=int, default=[0, 2, 5, 10, 20], help="notes per instrument")
    parser.add_argument("--folds", nargs="+", type=int, default=[0],
                        help="test folds of the training libraries: one fold model each; with several, the rest of the "
                             "library is classified by their mean probabilities (the ensemble users get)")
    parser.add_argument("--weightings", nargs="+", default=list(WEIGHTINGS), choices=WEIGHTINGS, metavar="WEIGHTING",
                        help=f"of {list(WEIGHTINGS)} (K=0 has none)")
    parser.add_argument("--out", default="benchmarks/results/few_shot.json")
    args = parser.parse_args(argv)
    if any(k < 0 for k in args.shots):
        parser.error("--shots must be >= 0")

    from instrclf import models, train  # TensorFlow after the arguments
    from instrclf.features import Features

    params = settings.load(args.params)
    seed = settings.seed(params)
    shift_average = settings.section(params, PredictSettings).shift_average
    cache = Features(args.features, clean=settings.section(params, CleanSettings), features=settings.section(params, FeatureSettings))
    index = cache.index
    if args.library not in set(index["library"]):
        parser.error(f"--library {args.library} is not in {args.features} (it has {sorted(index['library'].unique())})")
    labels = data.class_names(index)
    details = layout.read_note_details(args.metadata)
    folds = {fold: data.fold_sets(index, test_fold=fold, unseen_library=args.library) for fold in args.folds}
    unseen = folds[args.folds[0]].unseen  # every note of the library, whatever the fold
    new = unseen.merge(details[["Path", "pitch"]], on="Path", how="left", validate="many_to_one")
    if new["pitch"].isna().any():
        parser.error(f"{args.metadata} lacks the pitch of some {args.library} notes: is it this run's raw metadata?")
    notes = new.drop_duplicates("Path")[["Path", "instrument", "pitch"]]
    common = rest_of(notes, pick_notes(notes, shots=max(args.shots), seed=seed))
    print(f"{args.library}: {len(notes)} notes; common test set {len(common)} notes", flush=True)

    runs = []
    for model in args.models:
        for shots in args.shots:
            picked = pick_notes(notes, shots=shots, seed=seed)
            extra = new[new["Path"].isin(picked["Path"])].drop(columns="pitch")
            rest = new[new["Path"].isin(rest_of(notes, picked)["Path"])].drop(columns="pitch")
            shared = new[new["Path"].isin(common["Path"])].drop(columns="pitch")
            for weighting in args.weightings if shots else WEIGHTINGS[:1]:
                start, rest_probs, shared_probs, one_view, per_fold = time.perf_counter(), [], [], [], {}
                for fold, sets in folds.items():
                    job = replace(settings.TrainingJob.from_params(params, model=model, fold=fold), unseen_library=None)
                    rows = pd.concat([sets.train, extra], ignore_index=True)  # the new library's picked notes train
                    weights = {args.library: balancing_weight(rows, args.library)} if weighting == "balanced" else {}
                    draws = data.draws_of(rows, weights, libraries=index["library"]) if weights else None
                    take = coloured(cache, rows, degree=job.library_colour)
                    fitted = train.fit(job, take(rows), data.encode(rows["label"], labels), take(sets.val),
                                       data.encode(sets.val["label"], labels), n_classes=len(labels), draws=draws)
                    score = models.scorer(fitted.back, shift_average=shift_average)  # as models/<model>.keras scores
                    x_rest = take(rest)  # read and coloured once for both scorings
                    rest_probs.append(window_probs(score, x_rest))
                    shared_probs.append(window_probs(score, take(shared)))
                    one_view.append(window_probs(fitted.back, x_rest) if shift_average else rest_probs[-1])
                    per_fold[str(fold)] = {
                        "library_weight": round(weights.get(args.library, 1.0), 3),
                        "rest_accuracy": round(note_accuracy(rest_probs[-1], rest, labels), 4),
                        "test_fold_accuracy": round(note_accuracy(window_probs(score, take(sets.test)), sets.test, labels), 4),
                        "best_epoch": fitted.best_epoch,
                    }
                run = {
                    "model": model,
                    "shots": shots,
                    "weighting": weighting if shots else "none",
                    "library_weight": round(weights.get(args.library, 1.0), 3),
                    "picked_notes": len(picked),
                    "picked_windows": len(extra),
                    "rest_notes": int(rest["Path"].nunique()),
                    # one fold: that fold model's figures; several: the mean of their probabilities
                    "rest_accuracy": round(note_accuracy(np.mean(rest_probs, axis=0), rest, labels), 4),
                    "common_accuracy": round(note_accuracy(np.mean(shared_probs, axis=0), shared, labels), 4),
                    "shift_average": shift_average,  # predict.shift_average; the rest scored without it:
                    "rest_accuracy_one_view": round(note_accuracy(np.mean(one_view, axis=0), rest, labels), 4),
                    "test_fold_accuracy": float(np.mean([f["test_fold_accuracy"] for f in per_fold.values()]).round(4)),
                    "best_epoch": per_fold[str(args.folds[0])]["best_epoch"],
                    "seconds": round(time.perf_counter() - start, 1),
                }
                if len(folds) > 1:
                    run["folds"] = per_fold
                runs.append(run)
                print(json.dumps(run), flush=True)
                write_json(args.out, _report(args, seed, runs, len(notes), len(common)))  # a partial run keeps what it measured

    print(table(runs))


def _report(args, seed, runs, n_notes, n_common) -> dict:
    return {
        "command": "python benchmarks/few_shot.py " + " ".join(
            ["--library", args.library, "--models", *args.models, "--shots", *map(str, args.shots),
             "--weightings", *[f"'{w}'" if " " in w else w for w in args.weightings], "--folds", *map(str, args.folds)]),
        "machine": {"cpu": cpu_model(), "python": platform.python_version(), "tensorflow": version("tensorflow")},
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "library": args.library,
        "folds": args.folds,
        "seed": seed,
        "library_notes": n_notes,
        "common_notes": n_common,
        "runs": runs,
    }


def table(runs: list) -> str:
    """Markdown: one row per (model, weighting), one column per K (accuracy on the rest; common set in brackets)."""
    shots = sorted({r["shots"] for r in runs})
    lines = ["| model | weighting | " + " | ".join(f"K={k}" for k in shots) + " |", "|---|---|" + "---|" * len(shots)]
    for model in dict.fromkeys(r["model"] for r in runs):
        for weighting in WEIGHTINGS:
            cells = []
            for k in shots:
                found = [r for r in runs if r["model"] == model and r["shots"] == k and r["weighting"] in (weighting, "none")]
                cells.append(f"{found[0]['rest_accuracy']:.3f} ({found[0]['common_accuracy']:.3f})" if found else "")
            lines.append(f"| {model} | {weighting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
