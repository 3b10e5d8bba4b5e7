"""``instrclf compare``: the models' cross-validation summaries side by side.

Reads the summary stage's metrics files (``metrics/<model>.json``: mean and sample
standard deviation across folds) from the workspace, from git revisions or from DVC
experiments, and prints one row per model (and source) in text, Markdown or JSON::

    instrclf compare                                  # the workspace's metrics/
    instrclf compare --rev HEAD~1 --rev main          # committed metrics, per revision
    instrclf compare --exps                           # every experiment (dvc exp show --json), 3 figures
    instrclf compare --exps --format markdown         # every experiment, every figure
    instrclf compare --exps --by split.unseen_library # unseen accuracy: param value x model
    instrclf compare --readme README.md               # rewrite the README's results table

Every error is one line naming the file, revision or experiment at fault.
"""

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

from . import layout
from .errors import DataError, InstrclfError, ParameterError
from .io import atomic_file
from .settings import MODEL_NAMES, lookup
from .summary import FOLD_KEYS

START = "<!-- results:start -->"
END = "<!-- results:end -->"

#: ``(header, key)`` of the table's columns after the model; a fold key shows ``mean ± std``.
COLUMNS = (
    ("file acc.", "file_accuracy"),
    ("window acc.", "window_accuracy"),
    ("macro F1", "macro_f1"),
    ("ROC AUC", "roc_auc_macro"),
    ("unseen file acc.", "unseen_file_accuracy"),
    ("unseen macro F1", "unseen_macro_f1"),
    ("ensemble unseen acc.", "ensemble_unseen_file_accuracy"),
    ("ensemble, notes alone", "ensemble_unseen_alone_file_accuracy"),
)

#: The columns of ``--exps`` as text: one screen (100 columns) for many experiments; Markdown
#: and JSON keep every column.
BRIEF_COLUMNS = (COLUMNS[0], COLUMNS[4], COLUMNS[6])

#: Cell of a value that is absent or null.
MISSING = "n/a"

#: Metric of the ``--by`` matrix: each model's unseen-library file accuracy (mean across folds).
BY_METRIC = "unseen_file_accuracy_mean"

FORMATS = ("text", "markdown", "json")


# --------------------------------------------------------------------------- reading


def check_metrics(data, *, name) -> dict:
    """Check one summary file's values: finite numbers or null, naming ``name`` on failure."""
    if not isinstance(data, dict):
        raise DataError(f"{name}: expected a JSON object, got {type(data).__name__}")
    for key, value in data.items():
        bad = isinstance(value, bool) or not isinstance(value, (int, float, type(None)))
        if bad or (isinstance(value, float) and not math.isfinite(value)):
            raise DataError(f"{name}: {key} must be a finite number or null, got {value!r}")
    return data


def read_workspace(metrics_dir) -> dict:
    """Model -> summary from ``<metrics_dir>/<model>.json`` (models of :data:`MODEL_NAMES`)."""
    metrics_dir = Path(metrics_dir)
    if not metrics_dir.is_dir():
        raise DataError(f"metrics folder not found: {metrics_dir} (run dvc repro summary)")
    found = {}
    for model in MODEL_NAMES:
        path = metrics_dir / f"{model}.json"
        if path.is_file():
            found[model] = check_metrics(layout.read_json(path), name=path)
    if not found:
        raise DataError(f"{metrics_dir}: no <model>.json for any of {list(MODEL_NAMES)} (run dvc repro summary)")
    return found


def _git(*args, cwd) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DataError("git is not installed: --rev needs it") from None
    if done.returncode:
        raise DataError(" ".join(done.stderr.split()) or f"git {' '.join(args)} failed")
    return done.stdout


def read_revision(rev, *, metrics_dir="metrics", cwd=".") -> dict:
    """Model -> summary from ``<metrics_dir>/<model>.json`` as committed at ``rev``.

    Parameters
    ----------
    rev : str
        A git revision (``HEAD~1``, ``main``, a hash).
    metrics_dir : str
        The metrics folder, relative to ``cwd``.
    cwd : str or Path
        Where git runs (inside the repository).
    """
    try:
        _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=cwd)
    except DataError as exc:
        raise DataError(f"revision {rev!r}: not a commit of the repository at {Path(cwd).resolve()} ({exc})") from None
    folder = PurePosixPath(Path(metrics_dir).as_posix())
    names = _git("ls-tree", "--name-only", rev, "--", f"{folder}/", cwd=cwd).split("\n")
    found = {}
    for model in MODEL_NAMES:
        path = folder / f"{model}.json"
        if str(path) in names:
            name = f"{rev}:{path}"
            found[model] = check_metrics(layout.parse_json(_git("show", f"{rev}:./{path}", cwd=cwd), name=name), name=name)
    if not found:
        raise DataError(f"revision {rev!r} has no {folder}/<model>.json for any of {list(MODEL_NAMES)}")
    return found


def run_exp_show(*, cwd=".") -> list:
    """The output of ``dvc exp show --json``, parsed."""
    try:
        done = subprocess.run(["dvc", "exp", "show", "--json"], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DataError("dvc is not installed: --exps needs it") from None
    if done.returncode:
        raise DataError(f"dvc exp show --json failed: {' '.join(done.stderr.split())}")
    return layout.parse_json(done.stdout, name="dvc exp show --json", expect=list)


def lookup_param(params: dict, key: str):
    """Value of dotted ``key`` in ``dvc exp show``'s params (``{file: {"data": {...}}}``); KeyError if absent."""
    for entry in params.values():
        try:
            return lookup(entry.get("data") if isinstance(entry, dict) else None, key)
        except ParameterError:
            continue
    raise KeyError(key)


def _reason(error) -> str:
    """DVC's ``{"msg", "type"}`` error as one line."""
    return " ".join(str(error.get("msg", error) if isinstance(error, dict) else error).split())


def read_experiments(data, *, metrics_dir="metrics", name="dvc exp show --json", warn=None) -> list:
    """The committed baselines and their experiments from ``dvc exp show --json`` output.

    Parameters
    ----------
    data : list
        The parsed JSON (DVC 3): one entry per baseline (plus ``workspace``, skipped: the
        workspace is what ``--metrics`` shows), each with ``experiments[].revs[]``.
    metrics_dir : str
        The metrics folder, as DVC names its files (``metrics/<model>.json``).
    name : str
        Where ``data`` came from, for errors.
    warn : callable or None
        Called with a line for each entry skipped (failed, queued or without metrics).

    Returns
    -------
    list of dict
        ``{"name", "rev", "params", "metrics": {model: summary}, "baseline": bool}``, baselines
        (the commits experiments start from) first.
    """
    if not isinstance(data, list):
        raise DataError(f"{name}: expected the JSON list of dvc exp show --json, got {type(data).__name__}")
    entries = []
    for baseline in data:
        if not isinstance(baseline, dict) or "rev" not in baseline:
            raise DataError(f"{name}: not dvc exp show --json output (an entry without 'rev')")
        if baseline["rev"] == "workspace":
            continue
        entries.append({**baseline, "baseline": True})
        for group in baseline.get("experiments") or []:
            entries.extend(group.get("revs") or [] if isinstance(group, dict) else [])
    folder = PurePosixPath(Path(metrics_dir).as_posix())
    found = []
    for entry in entries:
        rev = str(entry.get("rev", ""))
        label = entry.get("name") or rev[:7]
        body = entry.get("data") or {}
        files = body.get("metrics") or {}
        metrics = {}
        for model in MODEL_NAMES:
            where = f"{name}: experiment {label}: {folder}/{model}.json"
            value = files.get(str(folder / f"{model}.json"))
            if isinstance(value, dict) and value.get("error"):
                raise DataError(f"{where}: {_reason(value['error'])}")
            if isinstance(value, dict) and "data" in value:
                metrics[model] = check_metrics(value["data"], name=where)
        if entry.get("error") or not metrics:
            if warn is not None:
                reason = _reason(entry["error"]) if entry.get("error") else f"no {folder}/<model>.json"
                warn(f"skipping experiment {label} ({rev[:7]}): {reason}")
            continue
        found.append({"name": label, "rev": rev, "params": body.get("params") or {}, "metrics": metrics,
                      "baseline": bool(entry.get("baseline"))})
    if not found:
        raise DataError(f"{name}: no experiment has {folder}/<model>.json (run dvc exp run)")
    return found


# --------------------------------------------------------------------------- tables


def rows_of(sources: dict) -> list:
    """Flat rows ``{"source", "model", <metric keys>...}`` from ``{source: {model: summary}}``."""
    return [{"source": source, "model": model, **summary} for source, models in sources.items() for model, summary in models.items()]


def _figure(value) -> str:
    return MISSING if value is None else f"{value:.3f}"


def cell(row: dict, key: str) -> str:
    """One table cell: ``mean ± std`` for a fold key (only the mean when std is null), else the value."""
    if key in FOLD_KEYS:
        mean, std = row.get(f"{key}_mean"), row.get(f"{key}_std")
        if mean is None:
            return MISSING
        return _figure(mean) if std is None else f"{mean:.3f} ± {std:.3f}"
    return _figure(row.get(key))


def grid(rows: list, *, with_source: bool, columns=COLUMNS) -> tuple:
    """``(header, body)`` of the per-model table, as strings (``columns``: ``(header, key)`` pairs)."""
    header = (["source"] if with_source else []) + ["model"] + [h for h, _ in columns]
    body = [
        ([str(r["source"])] if with_source else []) + [r["model"]] + [cell(r, key) for _, key in columns] for r in rows
    ]
    return header, body


def by_matrix(experiments: list, *, key: str) -> dict:
    """The matrix (value of param ``key``) x model of :data:`BY_METRIC`, plus its mean row.

    Returns
    -------
    dict
        ``{"by": key, "models": [...], "rows": {value: {model: score}}, "mean": {model: score},
        "worst": {model: score}}``; rows sorted by value (``"null"`` for null, a list of libraries
        joined by ``+``), a score ``None`` where it is missing, and a mean and worst case (the
        lowest row) ``None`` for a model missing in any row.

    Raises
    ------
    DataError
        If an experiment lacks the param, or two experiments with the same value of it
        disagree (they differ in something else: remove one with ``dvc exp remove``). A
        baseline commit with a value an experiment also has gives way to the experiment.
    """
    models = [m for m in MODEL_NAMES if any(m in e["metrics"] for e in experiments)]
    rows, origin = {}, {}
    # The sweep's experiments first; a baseline commit fills only a value no experiment has
    # (a sweep run on one fold differs from the committed five-fold run it started from).
    for exp in sorted(experiments, key=lambda e: bool(e.get("baseline"))):
        try:
            value = lookup_param(exp["params"], key)
        except KeyError:
            raise DataError(f"experiment {exp['name']}: no param {key!r}") from None
        label = "null" if value is None else "+".join(map(str, value)) if isinstance(value, list) else str(value)
        if exp.get("baseline") and label in rows:
            continue
        scores = {m: exp["metrics"].get(m, {}).get(BY_METRIC) for m in models}
        if label in rows and rows[label] != scores:
            raise DataError(
                f"experiments {origin[label]} and {exp['name']} both have {key}={label} but different metrics; "
                "remove one (dvc exp remove) to compare"
            )
        rows[label], origin[label] = scores, exp["name"]
    rows = {label: rows[label] for label in sorted(rows)}
    mean, worst = {}, {}
    for m in models:
        column = [scores[m] for scores in rows.values()]
        mean[m] = None if None in column else round(math.fsum(column) / len(column), 4)
        worst[m] = None if None in column else min(column)
    return {"by": key, "models": models, "rows": rows, "mean": mean, "worst": worst}


def by_grid(matrix: dict) -> tuple:
    """``(header, body)`` of a :func:`by_matrix` result, as strings."""
    models = matrix["models"]
    body = [[label] + [_figure(scores[m]) for m in models] for label, scores in matrix["rows"].items()]
    summary = [[name] + [_figure(matrix[name][m]) for m in models] for name in ("mean", "worst")]
    return [matrix["by"], *models], body + summary


def render(header: list, body: list, *, fmt: str) -> str:
    """A table as aligned ``text`` or a ``markdown`` pipe table (numbers right-aligned)."""
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|:--|" + "--:|" * (len(header) - 1)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in body])


# --------------------------------------------------------------------------- README


def replace_section(text: str, body: str, *, name="README") -> str:
    """Put ``body`` between the results markers of ``text``, keeping the markers.

    Raises
    ------
    DataError
        Naming ``name``: a marker missing or repeated, or the end before the start.
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


def update_readme(readme, table: str, *, check=False) -> bool:
    """Rewrite the README's results block (atomically, keeping its permissions).

    Returns
    -------
    bool
        Whether the README was (with ``check``: would be) changed.
    """
    readme = Path(readme)
    try:
        current = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"README not readable: {readme} ({exc.__class__.__name__})") from None
    wanted = replace_section(current, table, name=str(readme))
    if wanted != current and not check:
        if not os.access(readme, os.W_OK):  # the rewrite replaces the file: respect a read-only one
            raise DataError(f"{readme}: permission denied (the file is read-only)")
        mode = readme.stat().st_mode & 0o777
        try:
            with atomic_file(readme) as f:
                f.write(wanted)
                os.chmod(f.name, mode)
        except PermissionError as exc:
            raise DataError(f"{readme}: cannot be rewritten: its folder {readme.parent} is not writable ({exc.strerror})") from None
    return wanted != current


# --------------------------------------------------------------------------- command


def parse_args(argv=None):
    """The command line of ``instrclf compare``."""
    parser = argparse.ArgumentParser(prog="instrclf compare", description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", default="metrics", help="the summary stage's metrics folder (default: metrics)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--rev", action="append", metavar="REV", help="a git revision (repeatable)")
    source.add_argument("--exps", action="store_true", help="every experiment of dvc exp show --json")
    source.add_argument("--exps-json", metavar="FILE", help="saved output of dvc exp show --json")
    parser.add_argument("--by", metavar="PARAM", help="with --exps: matrix of this param's value x model (unseen accuracy)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--readme", metavar="FILE", help="replace this README's results block with the Markdown table")
    parser.add_argument("--check", action="store_true", help="with --readme: change nothing, exit 1 if out of date")
    args = parser.parse_args(argv)
    if args.by and not (args.exps or args.exps_json):
        parser.error("--by needs --exps or --exps-json")
    if args.check and not args.readme:
        parser.error("--check needs --readme")
    return args


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def compare(args) -> tuple:
    """``(header, body, json_value)`` of the table the arguments ask for."""
    if args.exps or args.exps_json:
        if args.exps_json:
            path = Path(args.exps_json)
            data = layout.read_json(path, expect=list)
            experiments = read_experiments(data, metrics_dir=args.metrics, name=str(path), warn=_warn)
        else:
            experiments = read_experiments(run_exp_show(), metrics_dir=args.metrics, warn=_warn)
        if args.by:
            matrix = by_matrix(experiments, key=args.by)
            return (*by_grid(matrix), matrix)
        sources = {e["name"]: e["metrics"] for e in experiments}
    elif args.rev:
        sources = {rev: read_revision(rev, metrics_dir=args.metrics) for rev in args.rev}
    else:
        sources = {"workspace": read_workspace(args.metrics)}
    rows = rows_of(sources)
    experiments = bool(args.exps or args.exps_json)
    brief = experiments and args.format == "text" and not args.readme
    header, body = grid(rows, with_source=len(sources) > 1 or experiments, columns=BRIEF_COLUMNS if brief else COLUMNS)
    return header, body, rows


def main(argv=None) -> int:
    """Print (or put into the README) the comparison; 0 on success, 1 on an error."""
    args = parse_args(argv)
    try:
        header, body, value = compare(args)
        if args.readme:
            changed = update_readme(args.readme, render(header, body, fmt="markdown"), check=args.check)
            if args.check and changed:
                print(f"error: {args.readme}'s results table is out of date; run instrclf compare --readme {args.readme}", file=sys.stderr)
                return 1
            print(f"compare: {args.readme} {'updated' if changed and not args.check else 'up to date'}")
        elif args.format == "json":
            print(json.dumps(value, indent=2, allow_nan=False))
        else:
            print(render(header, body, fmt=args.format))
    except InstrclfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
