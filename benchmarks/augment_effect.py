"""What does each augmentation do to accuracy on a library never trained on? (test fold 0)

Trains one model (the project's recipe from params.yaml, test fold 0, fold 1 validating,
folds 2-4 training) on the training libraries only, once per augmentation setting, and
reports file accuracy on the training libraries' test fold and on every note of each
held-out library. Spectrograms are computed once and shared by the runs; everything else
is :func:`instrclf.train.fit`, the stage's own training routine. One run per setting and seed: differences of about 2
points are within seed noise.

    python benchmarks/augment_effect.py --clean data/clean --train TimGM6mb sf_GMbank \\
        --held-out FluidR3_GM --augment '{}' --augment '{"eq_db": 6}' --augment '{"mel_shift": 2}'

Each ``--augment`` is JSON merged over ``train.augment`` with every transform off.
``--library-mean mean`` removes each library's mean log-mel spectrum (per mel band, over all
its windows and frames; the held-out library's from its own windows, without labels) from its
windows before training and evaluation; ``smooth`` removes only a cubic fitted across the mel
bands to that mean, the broad colouring of the library's recording chain, and ``smooth:<d>`` a
polynomial of degree ``d`` (:func:`instrclf.colour.colouring`; ``train.library_colour`` is the
pipeline's version of it, and is not applied here: this option decides).
"""

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from instrclf import colour, data, layout, settings
from instrclf.io import write_json
from instrclf.settings import AugmentSettings, SplitSettings

OFF = {"eq_db": 0, "mel_shift": 0, "freq_mask": 0, "time_mask": 0, "noise_snr_db": None}


def file_accuracy(back, specs, rows, labels) -> float:
    """Mean of window probabilities per recording (library + path), then argmax."""
    probs = back.predict(specs[rows.index.values], batch_size=settings.INFERENCE_BATCH, verbose=0)
    frame = pd.DataFrame(probs)
    frame["key"] = (rows["library"] + "/" + rows["Path"]).values
    frame["y"] = data.encode(rows["label"], labels)
    mean = frame.groupby("key").mean(numeric_only=True)
    return float((mean.drop(columns="y").values.argmax(1) == mean["y"].values).mean())


def remove_library_colouring(specs: np.ndarray, libraries: np.ndarray, mode: str) -> np.ndarray:
    """Spectrograms ``(n, frames, n_mels, 1)`` less their library's mean spectrum (``mode`` "mean"),
    or a cubic over the mel bands fitted to it ("smooth"; "smooth:<d>": degree ``d``); "none" returns ``specs``."""
    if mode == "none":
        return specs
    out = np.empty_like(specs)
    for library in np.unique(libraries):
        rows = libraries == library
        mean = colour.mean_spectrum(specs[rows])
        if mode.startswith("smooth"):
            mean = colour.colouring(mean, degree_of(mode))
        out[rows] = specs[rows] - mean.astype(specs.dtype)[None, None, :, None]
    return out


def degree_of(mode: str) -> int:
    """The polynomial degree of a ``--library-mean`` of ``smooth`` (3) or ``smooth:<d>``."""
    return 3 if mode == "smooth" else int(mode.split(":", 1)[1])


def library_mean(text: str) -> str:
    """``--library-mean``'s value, checked: none, mean, smooth or smooth:<degree 0-12>."""
    if text in ("none", "mean", "smooth"):
        return text
    if text.startswith("smooth:") and text[7:].isdigit() and int(text[7:]) <= 12:
        return text
    raise argparse.ArgumentTypeError(f"must be none, mean, smooth or smooth:<degree 0-12>, got {text!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", default="data/clean")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default="conv2d", choices=settings.MODEL_NAMES)
    parser.add_argument("--train", nargs="+", required=True, metavar="LIBRARY", help="training (and validation) libraries")
    parser.add_argument("--held-out", nargs="+", required=True, metavar="LIBRARY", help="libraries never trained on")
    parser.add_argument("--augment", action="append", default=[], help="JSON over every transform off (repeatable)")
    parser.add_argument("--library-mean", type=library_mean, default="none",
                        help="remove each library's mean spectrum (or its smooth part) first")
    parser.add_argument("--out", default="benchmarks/results/augment_effect.json")
    args = parser.parse_args(argv)

    from instrclf import features as spectra, train  # TensorFlow after the arguments

    params = settings.load(args.params)
    job = settings.TrainingJob.from_params(params, model=args.model, fold=0)
    index = layout.read_index(args.clean)
    labels = data.class_names(index)
    unknown = sorted(set(args.train + args.held_out) - set(index["library"]))
    if unknown:
        parser.error(f"libraries {unknown} are not in {args.clean} (it has {sorted(index['library'].unique())})")
    index = index[index["library"].isin(args.train + args.held_out)].reset_index(drop=True)
    start = time.perf_counter()
    front = spectra.frontend(clean=job.clean, features=job.features)
    specs = spectra.spectrograms(front, data.load_windows(args.clean, index, n_samples=job.clean.window_length))
    specs = remove_library_colouring(specs, index["library"].values, args.library_mean)
    print(f"spectrograms of {len(index)} windows: {time.perf_counter() - start:.1f} s", flush=True)
    val_fold, train_folds = SplitSettings.folds_of(0)

    def rows(libraries, folds):
        return index[index["library"].isin(libraries) & index["fold"].isin(folds)]

    tr, va = rows(args.train, train_folds), rows(args.train, [val_fold])
    y_train, y_val = data.encode(tr["label"], labels), data.encode(va["label"], labels)
    results = []
    for text in args.augment or ["{}"]:
        augment = AugmentSettings.from_params(OFF | json.loads(text))
        fit = train.fit(replace(job, augment=augment), specs[tr.index.values], y_train, specs[va.index.values], y_val,
                        n_classes=len(labels))
        back = fit.back
        row = {
            "augment": json.loads(text),
            "fit_seconds": round(fit.train_seconds, 1),
            "best_val_accuracy": round(fit.best_val_accuracy, 4),
            "test_fold": {lib: round(file_accuracy(back, specs, rows([lib], [0]), labels), 3) for lib in args.train},
            "held_out": {lib: round(file_accuracy(back, specs, index[index["library"] == lib], labels), 3) for lib in args.held_out},
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n| augment ({args.model}, test fold 0) | " + " | ".join(f"test {lib}" for lib in args.train)
          + " | " + " | ".join(f"held-out {lib}" for lib in args.held_out) + " |")
    print("|---" * (1 + len(args.train) + len(args.held_out)) + "|")
    for row in results:
        cells = [json.dumps(row["augment"]) or "none"] + [f"{row['test_fold'][lib]:.3f}" for lib in args.train]
        cells += [f"{row['held_out'][lib]:.3f}" for lib in args.held_out]
        print("| " + " | ".join(cells) + " |")
    write_json(args.out, {"model": args.model, "train": args.train, "held_out": args.held_out, "seed": job.seed,
                          "library_mean": args.library_mean, "runs": results})


if __name__ == "__main__":
    main()
