"""Run a round of hand-written mutants against a clean checkout (issue 24's acceptance check).

Each round's folder holds ``mutants.py``: ``M``, a list of ``(id, file, old, new, description)``
(each one exact replacement), ``TESTS`` (mutant number -> its module's own test files) and, once
tests were added for the escapes, ``NEW`` (mutant number -> the test that catches it).

    git worktree add --detach /tmp/mw <base commit>
    python benchmarks/hostile_mutants/rounds.py patches round7 --tree /tmp/mw   # write <id>.patch for each
    python benchmarks/hostile_mutants/rounds.py own round7 --tree /tmp/mw       # each alone vs its own files
    python benchmarks/hostile_mutants/rounds.py check round7 --tree /tmp/mc     # the new tests (a tree holding them)

``own`` writes ``<tree>.results.json`` (first failing test per mutant); ``check`` runs the new
tests on the clean tree, then each with its mutant applied alone. Tests run with
``PYTHONPATH=<tree>`` and the venv's ``bin/`` on ``PATH`` (the project is installed in editable
mode from another checkout), ``nice``, without the slow marker.
"""

import argparse
import contextlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load_round(name):
    """The round's ``mutants`` module."""
    spec = importlib.util.spec_from_file_location(f"mutants_{name}", os.path.join(HERE, name, "mutants.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def patch_of(name, key):
    """The path of mutant ``key``'s (``"07"``) patch in round ``name``."""
    folder = os.path.join(HERE, name)
    return os.path.join(folder, next(p for p in sorted(os.listdir(folder)) if p.startswith(key + "-") and p.endswith(".patch")))


def pytest(tree, venv, *args, stop_first=False):
    """``(returncode, output)`` of the non-slow tests ``args`` run in ``tree``."""
    env = dict(os.environ, PYTHONPATH=tree, PATH=f"{venv}:{os.environ['PATH']}")
    command = ["nice", "-n", "10", f"{venv}/python", "-m", "pytest", "-q", *(["-x"] if stop_first else []),
               "-m", "not slow", "-p", "no:cacheprovider", *args]
    try:
        proc = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=1500)
    except subprocess.TimeoutExpired:
        return -1, "TIMEOUT"
    return proc.returncode, proc.stdout + proc.stderr


@contextlib.contextmanager
def applied(name, key, tree):
    """Mutant ``key`` of round ``name`` applied to ``tree`` for the block; the tree restored after."""
    subprocess.run(["git", "apply", patch_of(name, key)], cwd=tree, check=True)
    try:
        yield
    finally:
        subprocess.run(["git", "checkout", "--", "instrclf", "stages"], cwd=tree, check=True)


def write_patches(name, mutants, tree):
    for mid, path, old, new, _ in mutants.M:
        full = os.path.join(tree, path)
        text = open(full, encoding="utf-8").read()
        assert text.count(old) == 1, (mid, text.count(old))
        open(full, "w", encoding="utf-8").write(text.replace(old, new))
        diff = subprocess.run(["git", "diff", "--", path], cwd=tree, capture_output=True, text=True, check=True).stdout
        subprocess.run(["git", "checkout", "--", path], cwd=tree, check=True)
        assert diff, mid
        open(os.path.join(HERE, name, f"{mid}.patch"), "w", encoding="utf-8").write(diff)
        print(mid, flush=True)


def own_files(name, mutants, tree, venv, only):
    out_path = tree.rstrip("/") + ".results.json"
    results = json.load(open(out_path)) if os.path.exists(out_path) else {}
    for mid, *_ in mutants.M:
        key = mid[:2]
        if only and key not in only:
            continue
        start = time.time()
        with applied(name, key, tree):
            rc, text = pytest(tree, venv, *mutants.TESTS[key], stop_first=True)
        failed = re.findall(r"^FAILED (\S+)", text, re.M) or re.findall(r"^ERROR (\S+)", text, re.M)
        tail = text.strip().splitlines()[-1] if text.strip() else ""
        results[mid] = {"rc": rc, "first_failure": failed[0] if failed else None, "tail": tail,
                        "seconds": round(time.time() - start), "tests_run": mutants.TESTS[key]}
        json.dump(results, open(out_path, "w"), indent=1)
        print(mid, rc, failed[:1], tail, flush=True)


def check_new(name, mutants, tree, venv, only):
    new = getattr(mutants, "NEW", {})
    keys = [k for k in new if not only or k in only]
    rc, text = pytest(tree, venv, *[new[k] for k in keys])
    print("clean:", rc, text.strip().splitlines()[-1], flush=True)
    for key in keys:
        with applied(name, key, tree):
            rc, text = pytest(tree, venv, new[key])
        print(key, rc, text.strip().splitlines()[-1], flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["patches", "own", "check"])
    parser.add_argument("round", help="the round's folder under benchmarks/hostile_mutants/ (round7)")
    parser.add_argument("ids", nargs="*", help="mutant numbers (07 12); default every one")
    parser.add_argument("--tree", required=True, help="a clean detached checkout (at the round's base commit for patches/own)")
    parser.add_argument("--venv-bin", default=os.path.dirname(sys.executable), help="the venv's bin/ (default: this Python's)")
    args = parser.parse_args(argv)
    mutants = load_round(args.round)
    if args.command == "patches":
        write_patches(args.round, mutants, args.tree)
    elif args.command == "own":
        own_files(args.round, mutants, args.tree, args.venv_bin, args.ids)
    else:
        check_new(args.round, mutants, args.tree, args.venv_bin, args.ids)


if __name__ == "__main__":
    main()
