"""Mutation score per module: mutmut mutates one module of instrclf/ and runs that module's own tests.

For each module (``instrclf/io.py``, ``instrclf/sources/soundfont/render.py``, ...) the
script builds a scratch copy of the repository under ``mutants/<slug>/`` (ignored by git;
the working tree itself is never touched), whose ``pyproject.toml`` carries the repo's
``[tool.mutmut]`` plus two per-module keys: ``only_mutate`` (that one file) and
``pytest_add_cli_args_test_selection`` (its mirror test file: ``tests/test_io.py``,
``tests/test_sources_soundfont_render.py``; :data:`EXTRA_TESTS` names the few modules whose
tests live elsewhere). There it runs ``mutmut run --max-children 1`` under ``nice``:
mutmut first runs the selected tests once to learn which test calls which function, then
runs, for every mutant, only the tests that reach its function (``pytest -x``), each in a
process forked from one that has already imported them (modules whose tests reach
TensorFlow use mutmut's fork server instead: see :data:`_TF`). Mutants live only in that process:
a test that starts ``python stages/...`` runs the unmutated package (mutmut's stats hook
cannot run in a child started elsewhere), so such tests kill nothing here.

Results go to ``benchmarks/results/mutation.json`` (updated per module; the other modules'
entries are kept): killed, survived, timeout, no tests (no selected test reaches the
function), score = killed / (killed + survived), seconds, and every survivor with its
mutated line. A survivor is explained either by a test (a mutant that survived the first
run of a module, ``before``, and is killed in a later one is listed with the first test
that fails on it: ``killed by tests/...::test_x``) or by one line in the hand-kept
``benchmarks/mutation_equivalent.json`` saying why it cannot change behaviour, keyed by
module, then ``function | -old line => +new line`` (stable across mutmut's numbering). A
survivor with neither is listed as ``unexplained``. A module never run is listed as
``not run``; one without a test file as ``no tests``; one with no function body to mutate
(``errors.py``: classes only) as ``nothing to mutate``. mutmut 3 mutates function bodies
only (no module-level constants, no function with a decorator other than staticmethod or
classmethod: each module lists those as ``not_mutated``), and code that runs at import time
(a helper that builds the settings classes' field types) keeps its original behaviour in
the forked children.

After adding tests, ``--recheck`` reuses the module's scratch copy (if the module itself is
unchanged) and runs only the survivors not yet listed as equivalent: killed mutants stay
killed when only tests were added. A recheck's ``seconds`` is its own; ``full_run_seconds``
keeps the full run's.

    python benchmarks/mutation.py --module io                 # one module (slug, dotted name or path)
    python benchmarks/mutation.py --module io layout audio    # several, one after another
    python benchmarks/mutation.py                             # every module of instrclf/
    python benchmarks/mutation.py --module io --recheck       # after adding tests: rerun the survivors only
    python benchmarks/mutation.py --module io --rebaseline    # this run becomes the module's "before"
    python benchmarks/mutation.py --list                      # modules, their tests and last scores

One process at a time (``--max-children 1``) under ``nice -n 10``: on a 2-core machine shared
with others a module takes from seconds (io: 82 mutants) to half an hour (audio: 545 mutants
whose tests stream audio); the TensorFlow modules (models, train, predict) take longer still.
Not run in CI.
"""

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

from machine import cpu_model, version  # benchmarks/machine.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "instrclf"
RESULTS = ROOT / "benchmarks" / "results" / "mutation.json"
EQUIVALENT = ROOT / "benchmarks" / "mutation_equivalent.json"
SCRATCH = ROOT / "mutants"
#: A copy of mutmut's stats as the full run left them (in the scratch copy's mutants/): the tests that existed then.
FULL_RUN_STATS = "mutmut-stats.full-run.json"

#: Repository files the tests read besides tests/ and the package (ROOT / "params.yaml", stages/...).
COPY = ("pyproject.toml", "params.yaml", "dvc.yaml", "README.md", "Makefile", "stages", "tests", "instrclf")

#: Modules whose behaviour is tested in another module's test file as well as (or instead of) a mirror.
EXTRA_TESTS = {
    "instrclf/instruments.py": ["tests/test_sources_soundfont_plan.py", "tests/test_sources_soundfont_render.py"],
    "instrclf/drawing.py": ["tests/test_figures.py"],
    "instrclf/clean_figure.py": ["tests/test_figures.py"],
    "instrclf/sources/__init__.py": ["tests/test_sources_combine.py", "tests/test_sources_local.py", "tests/test_sources_tinysol.py"],
    # the back ends are built, measured and compared in test_models.py (there is no tests/test_backends_*.py)
    **{f"instrclf/backends/{name}.py": ["tests/test_models.py"] for name in ("__init__", "baseline", "conv1d", "conv2d", "lstm")},
}

STATUS = {  # mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into the report's columns
    1: "killed", 3: "killed", 0: "survived", 5: "no_tests", 33: "no_tests", 34: "skipped",
    36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
    -11: "segfault", -9: "segfault", None: "not_checked", 37: "type_check",
}
COLUMNS = ("killed", "survived", "timeout", "no_tests", "skipped", "suspicious", "segfault", "not_checked")


def modules():
    """Every module of the package, as paths relative to the repository, in a fixed order."""
    return sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def slug(module):
    """``instrclf/sources/soundfont/render.py`` -> ``sources_soundfont_render`` (``__init__`` kept)."""
    return Path(module).relative_to("instrclf").with_suffix("").as_posix().replace("/", "_")


def resolve(name):
    """A module given as slug (``io``), dotted name (``instrclf.io``) or path; SystemExit if unknown."""
    for module in modules():
        if name in (module, slug(module), module[:-3].replace("/", "."), module[len("instrclf/"):]):
            return module
    raise SystemExit(f"unknown module {name!r}; --list shows them")


def tests_of(module):
    """The module's own tests: its mirror test file if there is one, plus :data:`EXTRA_TESTS`."""
    mirror = f"tests/test_{slug(module)}.py"
    found = [mirror] if (ROOT / mirror).exists() else []
    return found + [t for t in EXTRA_TESTS.get(module, []) if t not in found]


#: Test files that reach TensorFlow: mutmut's default fork runner runs the stats pass in its own
#: process and forks every mutant from it, and a process forked after TensorFlow has run an op
#: hangs on its first op (measured: every child stuck until killed). A fork server that has only
#: imported the tests forks children that work (measured), so these modules run with
#: ``process_isolation = "forkserver"``.
_TF = re.compile(r"^\s*(import tensorflow|from tensorflow|import keras|from keras|from instrclf(\.| import )"
                 r"[\w, ]*\b(models|train|predict|runtime|cli)\b)", re.M)


def uses_tensorflow(tests):
    """Whether any of ``tests`` imports TensorFlow, Keras or a module of ours that does."""
    return any(_TF.search((ROOT / t).read_text(encoding="utf-8")) for t in tests)


def toml_value(value):
    """A TOML literal for the simple values [tool.mutmut] holds (JSON's syntax is TOML's for these)."""
    return json.dumps(value)


def mutmut_config(module, tests):
    """The scratch copy's pyproject.toml: the repo's, with [tool.mutmut] narrowed to ``module``."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    base = tomllib.loads(text).get("tool", {}).get("mutmut", {})
    config = dict(base, only_mutate=[module], pytest_add_cli_args_test_selection=tests)
    if uses_tensorflow(tests):
        config["process_isolation"] = "forkserver"
    # drop the repo's [tool.mutmut] table and write the narrowed one at the end
    kept = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text).rstrip() + "\n"
    lines = ["", "[tool.mutmut]"] + [f"{key} = {toml_value(value)}" for key, value in config.items()]
    return kept + "\n".join(lines) + "\n"


def prepare(module, tests):
    """A fresh scratch copy of the repo for ``module`` under mutants/<slug>/; returns its path."""
    work = SCRATCH / slug(module)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in COPY:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, work / name)
    (work / "pyproject.toml").write_text(mutmut_config(module, tests), encoding="utf-8")
    (work / "mutants").mkdir()
    return work


def mutmut(work, *args, log=None, timeout=None, nice=10):
    """Run the venv's mutmut in ``work`` (niced); returns its exit code."""
    exe = Path(sys.executable).with_name("mutmut")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    command = ["nice", "-n", str(nice), str(exe), *args] if nice else [str(exe), *args]
    with open(log, "a", encoding="utf-8") if log else open(os.devnull, "w") as out:
        try:
            return subprocess.run(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            return "timeout"


def exit_codes(work, module):
    """mutant name -> mutmut's exit code for it, read from the module's .meta file."""
    meta = work / "mutants" / (module + ".meta")
    if not meta.exists():
        return {}
    return json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]


def decorated(module):
    """Functions of ``module`` that mutmut 3 leaves alone: those with decorators (bar staticmethod/classmethod)."""
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.decorator_list:
            names = [ast.unparse(d) for d in node.decorator_list]
            if names not in (["staticmethod"], ["classmethod"]):
                found.append(f"{node.name} (@{', @'.join(names)})")
    return found


def mutable(module):
    """Functions of ``module`` whose bodies mutmut 3 mutates: those without decorators (bar staticmethod/classmethod)."""
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    return [node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and [ast.unparse(d) for d in node.decorator_list] in ([], ["staticmethod"], ["classmethod"])]


def function_of(name):
    """``instrclf.io.xǁAtomicǁwrite__mutmut_3`` -> ``Atomic.write``; ``instrclf.io.x_load__mutmut_1`` -> ``load``."""
    mangled = name.partition("__mutmut_")[0].rpartition(".")[2]
    if mangled.startswith("xǁ"):
        _, cls, func = mangled.split("ǁ")
        return f"{cls}.{func}"
    return mangled[2:]


def diff_of(work, name):
    """The mutant's diff against the original function (mutmut show)."""
    exe = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(exe), "show", name], cwd=work, capture_output=True, text=True, check=False)
    return out.stdout


def changed_lines(diff):
    """The diff's removed and added lines, stripped (``---``/``+++`` headers left out)."""
    lines = diff.splitlines()
    removed = [line[1:].strip() for line in lines if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")]
    return removed, added


def key_of(name, diff):
    """Stable description of a mutant: ``function | -old => +new`` (mutmut's numbers can shift)."""
    removed, added = changed_lines(diff)
    return f"{function_of(name)} | -{' / '.join(removed)} => +{' / '.join(added)}"


def killer(work, name, tests):
    """The first of ``tests`` (node ids) that fails with mutant ``name`` active, or None."""
    env = dict(os.environ, MUTANT_UNDER_TEST=name, PY_IGNORE_IMPORTMISMATCH="1")
    env.pop("PYTHONPATH", None)
    command = [sys.executable, "-m", "pytest", "--rootdir=.", "-x", "-q", "-rf", "-p", "no:cacheprovider",
               "-p", "no:randomly", *sorted(tests)]
    out = subprocess.run(["nice", "-n", "10", *command], cwd=work / "mutants", env=env, capture_output=True,
                         text=True, check=False, timeout=900)
    failed = re.findall(r"^FAILED (\S+)", out.stdout, flags=re.M)
    return failed[0] if failed else None


def covering_tests(work, name):
    """Node ids of the tests that reach the mutant's function (mutmut's stats)."""
    stats = json.loads((work / "mutants" / "mutmut-stats.json").read_text(encoding="utf-8"))
    return stats["tests_by_mangled_function_name"].get(name.partition("__mutmut_")[0], [])


def load_json(path, default):
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default


def machine():
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "workers": 1,
        "nice": 10,
    }


def versions():
    return {name: version(name) for name in ("mutmut", "pytest", "hypothesis", "tensorflow", "keras", "numpy")} | {
        "python": sys.version.split()[0]}


def recheckable(module, *, previous, equivalent):
    """The last run's undecided mutants of ``module`` to run again, or None if the scratch copy is stale.

    Reusable when the scratch copy's module is byte for byte the working tree's: then every
    killed mutant stays killed (tests were only added), and only survivors, timeouts and
    unchecked mutants need running again, against the current tests; survivors already
    listed as equivalent are left as they are (no test can kill them).
    """
    work = SCRATCH / slug(module)
    if not (work / module).exists() or (work / module).read_bytes() != (ROOT / module).read_bytes():
        return None
    codes = exit_codes(work, module)
    if not codes:
        return None
    known = {s.get("mutant"): s.get("key") for s in (previous or {}).get("survivors", [])}
    return sorted(n for n, c in codes.items()
                  if STATUS.get(c, "suspicious") not in ("killed", "no_tests")
                  and known.get(n) not in equivalent.get(module, {}))


def refresh_tests(work):
    """Copy the working tree's tests (and the files they read) into a kept scratch copy."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in COPY:
        if name in ("instrclf", "pyproject.toml"):
            continue
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=ignore, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy2(source, work / name)


def run_module(module, *, previous, equivalent, timeout, recheck=False):
    """Mutate ``module``, run its tests per mutant, and return its report entry.

    With ``recheck``, a kept scratch copy whose module is unchanged is reused and only the
    last run's survivors (and timeouts) are run again, against the current tests.
    """
    tests = tests_of(module)
    if not mutable(module):
        return {"status": "nothing to mutate", "tests": tests, "not_mutated": decorated(module),
                "note": "no function body mutmut 3 mutates (only classes, constants or decorated functions)"}
    if not tests:
        return {"status": "no tests", "tests": [], "note": "no tests/test_<module>.py and no EXTRA_TESTS entry"}
    names = recheckable(module, previous=previous, equivalent=equivalent) if recheck else None
    if names is not None:
        work = SCRATCH / slug(module)
        refresh_tests(work)
        (work / "pyproject.toml").write_text(mutmut_config(module, tests), encoding="utf-8")
        mode = (f"recheck against the current tests of the last full run's {len(names)} survivors and timeouts "
                "not listed as equivalent")
    else:
        work = prepare(module, tests)
        mode = "full run"
    stats_file = work / "mutants" / "mutmut-stats.json"
    # the tests of the full run: a killed survivor is credited to the first test added since then (a recheck
    # after a recheck would otherwise count the first recheck's new tests as old ones)
    full_stats = work / "mutants" / FULL_RUN_STATS
    known = full_stats if full_stats.exists() else stats_file
    old_tests = set(json.loads(known.read_text(encoding="utf-8"))["duration_by_test"]) \
        if names is not None and known.exists() else set()
    log = work / "mutmut.log"
    print(f"{module}: {mode}: mutmut run against {' '.join(tests)} (log: {log.relative_to(ROOT)})", flush=True)
    start = time.monotonic()
    if names == []:
        code = 0
    else:
        code = mutmut(work, "run", "--max-children", "1", *(names or []), log=log, timeout=timeout)
    seconds = round(time.monotonic() - start, 1)
    if names is None and stats_file.exists():
        shutil.copy2(stats_file, full_stats)
    codes = exit_codes(work, module)
    counts = dict.fromkeys(COLUMNS, 0)
    for value in codes.values():
        status = STATUS.get(value, "suspicious")
        counts[status if status in counts else "suspicious"] += 1
    decided = counts["killed"] + counts["survived"]
    run = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": mode,
        "isolation": "forkserver" if uses_tensorflow(tests) else "fork",
        "seconds": seconds,
        "full_run_seconds": seconds if names is None else ((previous or {}).get("latest") or {}).get(
            "full_run_seconds", ((previous or {}).get("latest") or {}).get("seconds")),
        "mutmut_exit": code,
        "mutants": len(codes),
        **counts,
        "score": round(counts["killed"] / decided, 4) if decided else None,
    }
    if code != 0 or not codes:
        run["error"] = "mutmut did not finish; see " + str(log.relative_to(ROOT)) + ":\n" + \
            "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-15:])
    # survivors of this run, keyed by their stable description
    now = {}
    for name, value in codes.items():
        if STATUS.get(value) == "survived":
            diff = diff_of(work, name)
            now[key_of(name, diff)] = {"mutant": name, "diff": diff_body(diff)}
    before = (previous or {}).get("before")
    if not before or before.get("score") is None:  # a failed attempt is no baseline
        before = run
    survivors = []
    earlier = {s["key"]: s for s in (previous or {}).get("survivors", [])} if previous else {}
    keys = list(dict.fromkeys([*earlier, *now]))
    for key in keys:
        entry = dict(earlier.get(key, {}), key=key, **now.get(key, {}))
        entry["function"] = key.split(" | ")[0]
        if key in now:
            reason = equivalent.get(module, {}).get(key)
            entry["verdict"] = f"equivalent: {reason}" if reason else "unexplained"
        else:
            name = entry.get("mutant")
            status = STATUS.get(codes.get(name), "gone") if name in codes else "gone"
            if status == "killed" and not str(entry.get("verdict", "")).startswith("killed by"):
                # mutmut's number for the same mutation can change when the module changes: check the line too
                # the tests added since the last run are the candidates (few and fast)
                new = [t for t in covering_tests(work, name) if t not in old_tests]
                first = killer(work, name, new) if new else None
                entry["verdict"] = f"killed by {first}" if first else "killed (by a test that existed before)"
            elif status not in ("killed",):
                entry["verdict"] = f"no longer generated ({status})" if status == "gone" else status
        survivors.append(entry)
    return {
        "status": "run" if "error" not in run else "error",
        "tests": tests,
        "command": f"python benchmarks/mutation.py --module {slug(module)}",
        "before": before,
        "latest": run,
        "not_mutated": decorated(module),
        "survivors": survivors,
    }


def diff_body(diff):
    """The mutated lines of a diff as one string: ``-old`` and ``+new`` lines only."""
    removed, added = changed_lines(diff)
    return "\n".join([f"- {line}" for line in removed] + [f"+ {line}" for line in added])


def summary(report):
    """Overall killed/survived/score over the modules that ran."""
    killed = sum(m["latest"]["killed"] for m in report["modules"].values() if "latest" in m)
    survived = sum(m["latest"]["survived"] for m in report["modules"].values() if "latest" in m)
    first_killed = sum(m["before"]["killed"] for m in report["modules"].values() if "before" in m)
    first_survived = sum(m["before"]["survived"] for m in report["modules"].values() if "before" in m)
    return {
        "killed": killed,
        "survived": survived,
        "score": round(killed / (killed + survived), 4) if killed + survived else None,
        "score_before_new_tests": round(first_killed / (first_killed + first_survived), 4)
        if first_killed + first_survived else None,
        "modules_run": sorted(k for k, m in report["modules"].items() if "latest" in m),
        "modules_not_run": sorted(k for k, m in report["modules"].items() if m["status"] == "not run"),
        "modules_without_tests": sorted(k for k, m in report["modules"].items() if m["status"] == "no tests"),
        "modules_without_mutants": sorted(k for k, m in report["modules"].items() if m["status"] == "nothing to mutate"),
    }


def table(report):
    """The report as a Markdown table: one row per module, then the overall score."""
    def pct(value):
        return "" if value is None else f"{100 * value:.0f} %"

    rows = ["| module | mutants | killed | survived (equivalent) | timeout | no test reaches | score before new tests "
            "| score | full run |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for module in modules():
        entry = report["modules"].get(module, {"status": "not run"})
        latest, before = entry.get("latest"), entry.get("before")
        if not latest:
            rows.append(f"| {module} | {entry['status']} | | | | | | | |")
            continue
        equivalent = sum(str(s.get("verdict", "")).startswith("equivalent") for s in entry.get("survivors", [])
                         if s.get("key") and latest["survived"])
        seconds = latest.get("full_run_seconds") or latest["seconds"]
        rows.append(f"| {module} | {latest['mutants']} | {latest['killed']} | {latest['survived']} ({equivalent}) "
                    f"| {latest['timeout']} | {latest['no_tests']} | {pct(before and before['score'])} "
                    f"| {pct(latest['score'])} | {seconds / 60:.1f} min |")
    overall = report.get("overall", {})
    rows.append(f"| **all run** | | {overall.get('killed')} | {overall.get('survived')} | | "
                f"| {pct(overall.get('score_before_new_tests'))} | **{pct(overall.get('score'))}** | |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", nargs="+", help="modules to run (slug like io or sources_tinysol, dotted name "
                                                     "or path); default: every module of instrclf/")
    parser.add_argument("--rebaseline", action="store_true",
                        help="forget the modules' earlier runs: this run becomes their 'before'")
    parser.add_argument("--recheck", action="store_true",
                        help="reuse the module's scratch copy if the module is unchanged and run only the last "
                             "run's survivors and timeouts against the current tests (after adding tests)")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per module before giving up")
    parser.add_argument("--list", action="store_true", help="print modules, their tests and last scores; run nothing")
    parser.add_argument("--verdicts", action="store_true",
                        help="re-read benchmarks/mutation_equivalent.json into the survivors' verdicts; run nothing")
    parser.add_argument("--table", action="store_true", help="print the results as a Markdown table; run nothing")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON (updated in place)")
    args = parser.parse_args()

    if args.table:
        print(table(load_json(args.out, {"modules": {}})))
        return
    if args.verdicts:
        equivalent = load_json(EQUIVALENT, {})
        report = load_json(args.out, {"modules": {}})
        for module, entry in report["modules"].items():
            for survivor in entry.get("survivors", []):
                verdict = str(survivor.get("verdict", ""))
                if verdict == "unexplained" or verdict.startswith("equivalent: "):
                    reason = equivalent.get(module, {}).get(survivor["key"])
                    survivor["verdict"] = f"equivalent: {reason}" if reason else "unexplained"
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return

    if args.list:
        report = load_json(args.out, {"modules": {}})
        for module in modules():
            entry = report["modules"].get(module, {"status": "not run"})
            latest = entry.get("latest", {})
            print(f"{module:42} {entry['status']:8} {latest.get('score')!s:7} {' '.join(tests_of(module))}")
        return

    chosen = [resolve(name) for name in args.module] if args.module else modules()
    equivalent = load_json(EQUIVALENT, {})
    for module in chosen:
        # read again before and after each module: another run may have updated other modules meanwhile
        previous = None if args.rebaseline else load_json(args.out, {"modules": {}})["modules"].get(module)
        if previous and "before" not in previous:
            previous = None
        entry = run_module(module, previous=previous, equivalent=equivalent, timeout=args.timeout,
                           recheck=args.recheck)
        report = load_json(args.out, {"benchmark": "mutation", "modules": {}})
        for name in modules():
            report["modules"].setdefault(name, {"status": "not run", "tests": tests_of(name)})
        report["modules"][module] = entry
        report.update({
            "command": "python benchmarks/mutation.py --module <slug> (one module per run; see each module's command)",
            "tool": "mutmut run --max-children 1, one module's own tests per module; fork runner, or a fork server "
                    "for modules whose tests reach TensorFlow (TF hangs in a child forked after it ran an op)",
            "score": "killed / (killed + survived); timeouts and mutants no selected test reaches are counted apart",
            "limits": "mutmut 3 mutates function bodies only: not module-level constants, and not functions with "
                      "decorators other than staticmethod/classmethod (each module lists those as not_mutated)",
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(),
            "versions": versions(),
        })
        report["overall"] = summary(report)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        latest = entry.get("latest", {})
        print(f"{module}: {entry['status']}, killed {latest.get('killed')} survived {latest.get('survived')} "
              f"timeout {latest.get('timeout')} no tests {latest.get('no_tests')} score {latest.get('score')} "
              f"in {latest.get('seconds')} s", flush=True)
        for s in entry.get("survivors", []):
            if s.get("verdict") == "unexplained":
                print(f"  survived: {s['key']}", flush=True)


if __name__ == "__main__":
    main()
