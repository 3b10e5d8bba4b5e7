"""Command line: classify your own recordings with a trained model.

    instrclf classify --model models/conv2d.keras my_note.wav other.flac
"""

import argparse
import json
import sys

import numpy as np

from .errors import InstrclfError


def classify_file(model, meta: dict, path) -> np.ndarray:
    """Mean class probabilities over the 1-second windows of one recording.

    The recording is cut exactly as the clean stage cut the training data (the settings
    are stored with the model), classified window by window, and the probabilities averaged.

    Parameters
    ----------
    model : keras.Model
        A trained model.
    meta : dict
        Its metadata (``labels``, ``clean``).
    path : str or Path
        Any audio file soundfile reads.

    Returns
    -------
    numpy.ndarray or None
        Probabilities in ``meta["labels"]`` order, or ``None`` if the recording is silent
        after thresholding.
    """
    from .audio import load, prepare

    y, sr = load(path)
    windows = prepare(y, sr, **meta["clean"])
    if len(windows) == 0:
        return None
    probs = model.predict(windows[..., np.newaxis], verbose=0)
    return probs.mean(axis=0)


def classify(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="instrclf classify", description="Name the instrument playing each recording.")
    parser.add_argument("--model", required=True, help="a trained model, e.g. models/conv2d.keras")
    parser.add_argument("--top", type=int, default=3, help="how many labels to show per file (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file instead of text")
    parser.add_argument("files", nargs="+", help="audio files (WAV, FLAC, OGG, ...)")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top must be >= 1, got {args.top}")

    from .models import load

    model, meta = load(args.model)
    labels = meta["labels"]
    for path in args.files:
        probs = classify_file(model, meta, path)
        if probs is None:
            ranked = []
        else:
            order = np.argsort(-probs, kind="stable")[: args.top]
            ranked = [(labels[i], float(probs[i])) for i in order]
        if args.json:
            print(json.dumps({"file": str(path), "top": [{"label": k, "probability": p} for k, p in ranked]}))
        elif not ranked:
            print(f"{path}: silent (nothing above the model's threshold of {meta['clean']['threshold_db']} dBFS)")
        else:
            print(f"{path}: " + ", ".join(f"{k} {p:.1%}" for k, p in ranked))
    return 0


COMMANDS = {"classify": classify}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: instrclf {{{','.join(COMMANDS)}}} ...\n{__doc__}", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(COMMANDS[argv[0]](argv[1:]))
    except InstrclfError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
