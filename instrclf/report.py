"""The README's results table, rendered from the committed metrics JSON.

``python -m instrclf.report --metrics metrics --readme README.md`` rewrites the part of
the README between ``<!-- results:start -->`` and ``<!-- results:end -->``;
``--check`` only compares and exits 1 if the README is out of date.
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

from . import params
from .errors import DataError, InstrclfError
from .io import atomic_file

START = "<!-- results:start -->"
END = "<!-- results:end -->"

COLUMNS = (
    # header, file ("eval": metrics/<model>.json, "train": metrics/train/<model>.json), key, format
    ("file accuracy", "eval", "file_accuracy", "{:.3f}"),
    ("window accuracy", "eval", "window_accuracy", "{:.3f}"),
    ("macro F1", "eval", "macro_f1", "{:.3f}"),
    ("ROC AUC macro", "eval", "roc_auc_macro", "{:.3f}"),
    ("ROC AUC micro", "eval", "roc_auc_micro", "{:.3f}"),
    ("epochs", "train", "epochs_run", "{:.0f}"),
    ("training s", "train", "train_seconds", "{:.0f}"),
    ("samples/s", "train", "samples_per_second", "{:.0f}"),
)
"""The table's columns after ``model``; a key absent from its file shows as ``n/a``."""

MISSING = "n/a"


def _read_json(path) -> dict:
    """Read one flat metrics file; raise naming it if it is missing or not a JSON object."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"metrics file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def find_models(metrics_dir, *, order=None) -> list:
    """Models with training metrics (``<metrics_dir>/train/<model>.json``).

    Parameters
    ----------
    metrics_dir : str or Path
        The metrics folder.
    order : list of str or None
        Preferred order (``train.models``): models listed there come first in that
        order, any others follow sorted; ``None`` sorts all by name.
    """
    found = sorted(p.stem for p in Path(metrics_dir, "train").glob("*.json"))
    if not found:
        raise DataError(f"no training metrics in {Path(metrics_dir, 'train')}: nothing to report")
    order = list(order or [])
    return [m for m in order if m in found] + [m for m in found if m not in order]


def load_rows(metrics_dir, *, models) -> list:
    """One dict per model: ``{"model": name, "eval": {...}, "train": {...}, "paths": {...}}``."""
    rows = []
    for model in models:
        paths = {"eval": Path(metrics_dir, f"{model}.json"), "train": Path(metrics_dir, "train", f"{model}.json")}
        rows.append({"model": model, "paths": paths, **{k: _read_json(p) for k, p in paths.items()}})
    return rows


def _cell(row, *, source, key, fmt) -> str:
    """Format one value, ``n/a`` if absent or null; raise naming the file and key if not a number."""
    value = row[source].get(key)
    if value is None:
        return MISSING
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{row['paths'][source]}: {key} must be a finite number, got {value!r}")
    return fmt.format(value)


def table(rows) -> str:
    """A markdown table: one row per model, the columns of :data:`COLUMNS`."""
    lines = [
        "| model | " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|:--|" + "--:|" * len(COLUMNS),
    ]
    for row in rows:
        cells = [_cell(row, source=s, key=k, fmt=f) for _, s, k, f in COLUMNS]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace_section(text, body, *, name="README") -> str:
    """Put ``body`` between the results markers of ``text``, keeping the markers.

    Parameters
    ----------
    text : str
        The README's text.
    body : str
        What goes between the markers (surrounded by blank lines).
    name : str
        The README's name, used in errors.

    Raises
    ------
    DataError
        If a marker is missing, repeated, or the end comes before the start.
    """
    for marker in (START, END):
        count = text.count(marker)
        if count != 1:
            raise DataError(f"{name} must contain the marker {marker!r} exactly once, found {count}")
    head, rest = text.split(START)
    if END not in rest:
        raise DataError(f"{name}: {END!r} must come after {START!r}")
    _, tail = rest.split(END)
    return f"{head}{START}\n\n{body}\n\n{END}{tail}"


def render(*, metrics_dir, readme, order=None) -> tuple:
    """The README's current text and the text it should have.

    Returns
    -------
    current, wanted : str
    """
    readme = Path(readme)
    try:
        current = readme.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"README not found: {readme}") from None
    rows = load_rows(metrics_dir, models=find_models(metrics_dir, order=order))
    return current, replace_section(current, table(rows), name=str(readme))


def main(argv=None) -> None:
    """Rewrite (or with ``--check`` verify) the README's results table."""
    parser = argparse.ArgumentParser(prog="python -m instrclf.report", description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", default="metrics", help="metrics folder (<model>.json, train/<model>.json)")
    parser.add_argument("--readme", default="README.md", help="README with the results markers")
    parser.add_argument("--params", help="params file; its train.models orders the rows")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the README is out of date")
    args = parser.parse_args(argv)
    try:
        order = params.get(params.load(args.params), "train.models") if args.params else None
        current, wanted = render(metrics_dir=args.metrics, readme=args.readme, order=order)
        if args.check:
            if current != wanted:
                print(
                    f"error: {args.readme}'s results table is out of date; run "
                    f"python -m instrclf.report --metrics {args.metrics} --readme {args.readme}",
                    file=sys.stderr,
                )
                sys.exit(1)
            return
        if current != wanted:
            mode = Path(args.readme).stat().st_mode & 0o777
            with atomic_file(args.readme) as f:
                f.write(wanted)
                os.chmod(f.name, mode)  # keep the README's permissions (a temporary file is 0600)
    except InstrclfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
