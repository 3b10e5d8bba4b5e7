"""Which instruments do the training libraries really sample, and how does the held-out figure split between them?

A General MIDI library often plays one instrument with another's samples (TimGM6mb's viola is
its violin, its double bass its cello): :mod:`library_overlap` lists, per library, the programs
that share samples. An instrument *has samples of its own* in a library if the library plays it
and shares none of its samples with another of the 14 instruments there. An instrument without
samples of its own in any training library reaches the models only as another instrument's
samples through the renderer's changes (pitch range, body resonance): this script splits each
model's user-model (ensemble) accuracy on the held-out library between the instruments that
some training library samples itself and those none does, and lists every instrument's figure.

    python benchmarks/library_overlap.py --lib TimGM6mb=... --lib freepats=/etc/timidity/freepats.cfg --out o.json
    python benchmarks/own_samples.py --overlap benchmarks/results/library_overlap_freepats.json

Reads a run's ``data/predictions/<model>.csv``: the libraries of its test-fold rows are the
training libraries, its rows of set ``unseen`` the held-out notes. Writes ``--out`` (JSON) and
prints a markdown table.
"""

import argparse
import ast
import json
from pathlib import Path

import pandas as pd

from library_overlap import INSTRUMENTS  # benchmarks/library_overlap.py (the script's folder is on sys.path)

from instrclf import settings
from instrclf.errors import DataError
from instrclf.layout import write_json


def _value(entry: dict, key: str):
    """A field of library_overlap.py's JSON, which writes lists and dicts as their Python repr."""
    value = entry[key]
    return ast.literal_eval(value) if isinstance(value, str) else value


def own_samples(overlap: dict, libraries: list) -> dict:
    """Instrument -> the libraries of ``libraries`` that play it with samples of its own.

    ``overlap`` is library_overlap.py's JSON: per library its ``missing_programs``, its
    ``silent_keys`` (an instrument silent on every key is missing too) and its
    ``programs_sharing_samples`` (``"Vn=Va"``: both play the same samples; neither has its own).
    """
    found = overlap.get("libraries", {})
    absent = sorted(set(libraries) - set(found))
    if absent:
        raise DataError(f"the overlap file has no libraries {absent} (it has {sorted(found)})")
    instruments = {}
    for lib in libraries:
        entry = found[lib]
        shared = {name for pair in _value(entry, "programs_sharing_samples") for name in pair.split("=")}
        missing = set(_value(entry, "missing_programs"))
        silent = _value(entry, "silent_keys")
        for name, (_, low, high) in INSTRUMENTS.items():
            if len(silent.get(name, [])) >= high - low + 1:
                missing.add(name)
            instruments.setdefault(name, [])
            if name not in missing and name not in shared:
                instruments[name].append(lib)
    return instruments


def split_accuracy(predictions: pd.DataFrame, own: dict) -> dict:
    """Held-out accuracy over all notes, over the instruments with samples of their own and the rest, and per instrument."""
    held = predictions[predictions["set"] == "unseen"]
    if held.empty:
        raise DataError("the predictions have no held-out notes (set 'unseen'): was split.unseen_library null?")
    unknown = sorted(set(held["label"]) - set(own))
    if unknown:
        raise DataError(f"labels {unknown} are not instruments: the split needs a run with data.target: instrument")
    right = held["label"] == held["predicted"]
    sampled = held["label"].map(lambda name: bool(own.get(name)))

    def share(mask):
        return {"accuracy": round(float(right[mask].mean()), 4) if mask.any() else None, "notes": int(mask.sum())}

    per = {name: share(held["label"] == name) for name in sorted(held["label"].unique())}
    return {"all": share(pd.Series(True, index=held.index)), "own_samples": share(sampled), "borrowed": share(~sampled), "instruments": per}


def table(results: dict, own: dict) -> str:
    """Markdown: one row per model, then one per instrument."""
    borrowed = sorted(name for name, libs in own.items() if not libs)
    lines = [f"| model | held out, all | instruments some training library samples | instruments none samples ({', '.join(borrowed) or '-'}) |",
             "|:--|--:|--:|--:|"]
    for model, r in results.items():
        cells = [f"{r[k]['accuracy']:.3f} ({r[k]['notes']})" if r[k]["accuracy"] is not None else "-"
                 for k in ("all", "own_samples", "borrowed")]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "| instrument | training libraries with samples of its own | " + " | ".join(results) + " |",
              "|:--|:--|" + "--:|" * len(results)]
    for name in sorted(own):
        cells = [f"{r['instruments'][name]['accuracy']:.3f}" if name in r["instruments"] else "-" for r in results.values()]
        lines.append(f"| {name} | {', '.join(own[name]) or 'none'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overlap", default="benchmarks/results/library_overlap_freepats.json",
                        help="benchmarks/library_overlap.py's --out, covering every training library")
    parser.add_argument("--predictions", default="data/predictions", help="the predict@ stages' output: <model>.csv")
    parser.add_argument("--models", nargs="+", default=list(settings.MODEL_NAMES), choices=settings.MODEL_NAMES)
    parser.add_argument("--out", default="benchmarks/results/own_samples.json")
    args = parser.parse_args(argv)
    overlap = json.loads(Path(args.overlap).read_text(encoding="utf-8"))
    predictions = {}
    for model in args.models:
        path = Path(args.predictions) / f"{model}.csv"
        if not path.is_file():
            raise DataError(f"{path}: not found (run dvc repro predict@{model})")
        predictions[model] = pd.read_csv(path)
    first = next(iter(predictions.values()))
    libraries = sorted(first.loc[first["set"] == "test", "library"].unique())
    held_out = sorted(first.loc[first["set"] == "unseen", "library"].unique())
    own = own_samples(overlap, libraries)
    results = {model: split_accuracy(table_, own) for model, table_ in predictions.items()}
    write_json(args.out, {"training_libraries": libraries, "held_out": held_out, "own_samples": own, "models": results})
    print(table(results, own))


if __name__ == "__main__":
    main()
