"""instrclf.fingerprint and stage code: each stage script's import closure, hashed."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from instrclf.fingerprint import closure, fingerprints, imported_modules
from instrclf.settings import MODEL_NAMES

ROOT = Path(__file__).resolve().parents[1]


def listed(text: str) -> list:
    return [line.split("  ", 1)[1] for line in text.splitlines()]


def test_closure_follows_imports_inside_functions_relative_ones_and_parents():
    needed = closure(ROOT, ROOT / "stages/train.py", model="lstm")
    assert "instrclf/train.py" in needed  # imported inside main()
    assert "instrclf/instruments.py" in needed  # only through settings' relative import
    assert "instrclf/backends/lstm.py" in needed and "instrclf/backends/conv2d.py" not in needed  # by name
    assert "instrclf/__init__.py" in needed and "stages/train.py" in needed
    assert needed == sorted(needed)
    assert not any("backends/" in f and not f.endswith("__init__.py") for f in closure(ROOT, ROOT / "stages/train.py"))


def test_a_relative_import_resolves_against_its_package_and_a_name_to_the_longest_module(tmp_path):
    package = tmp_path / "instrclf"
    (package / "sub").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "b.py", "sub/__init__.py", "sub/c.py"):
        (package / name).write_text("")
    (package / "sub/c.py").write_text("from .. import a\nfrom ..b import thing\nfrom . import nothing_here\nimport os\n")
    found = imported_modules(tmp_path, package / "sub/c.py", package="instrclf.sub")
    assert found == {"instrclf", "instrclf.a", "instrclf.b", "instrclf.sub"}
    script = tmp_path / "stages/s.py"
    script.parent.mkdir()
    script.write_text("def main():\n    from instrclf.sub.c import f\n")
    assert closure(tmp_path, script) == ["instrclf/__init__.py", "instrclf/a.py", "instrclf/b.py",
                                         "instrclf/sub/__init__.py", "instrclf/sub/c.py", "stages/s.py"]


def test_fingerprints_are_sha256sum_lists_one_per_script_and_model():
    found = fingerprints(ROOT)
    scripts = sorted(p.stem for p in (ROOT / "stages").glob("*.py") if p.name != "code.py")
    models = {"train", "predict", "export"}
    assert sorted(found) == sorted([f"{s}-{m}.sha256" for s in scripts if s in models for m in MODEL_NAMES]
                                   + [f"{s}.sha256" for s in scripts if s not in models])
    for name, text in found.items():
        stem, _, model = name.removesuffix(".sha256").partition("-")
        assert listed(text) == closure(ROOT, ROOT / f"stages/{stem}.py", model=model or None)
    # sha256sum checks the tree against every one
    for text in found.values():
        proc = subprocess.run(["sha256sum", "--check", "--strict", "-"], input=text, cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture()
def tree(tmp_path):
    """A copy of the scripts and the package."""
    for part in ("stages", "instrclf"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.parametrize(("module", "changed"), [
    ("instrclf/backends/lstm.py", {"train-lstm", "predict-lstm", "export-lstm"}),
    ("instrclf/report.py", {"report"}),
    ("instrclf/clean_figure.py", {"clean"}),
    ("instrclf/cli.py", set()),  # no stage runs the command line
    ("stages/summary.py", {"summary"}),
])
def test_an_edit_changes_exactly_the_fingerprints_of_the_scripts_that_run_it(tree, module, changed):
    before = fingerprints(tree)
    with open(tree / module, "a") as f:
        f.write("# a comment\n")
    after = fingerprints(tree)
    assert after.keys() == before.keys()
    assert {name.removesuffix(".sha256") for name in after if after[name] != before[name]} == changed


def test_a_new_import_joins_the_fingerprint_without_touching_dvc_yaml(tree):
    assert "instrclf/compare.py" not in listed(fingerprints(tree)["summary.sha256"])
    with open(tree / "instrclf/summary.py", "a") as f:
        f.write("\n\ndef later():\n    from . import compare  # noqa: F401\n")
    assert "instrclf/compare.py" in listed(fingerprints(tree)["summary.sha256"])


def test_stage_code_writes_the_fingerprints_and_one_summary_line(tree, tmp_path):
    out = tmp_path / "out" / "code"
    proc = subprocess.run([sys.executable, tree / "stages/code.py", "--out", out], cwd=tree, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    files = len({f for text in fingerprints(tree).values() for f in listed(text)})
    assert proc.stdout == f"code: fingerprints={len(fingerprints(tree))}, files={files}\n"
    assert {p.name: p.read_text() for p in out.iterdir()} == fingerprints(tree)


def test_fingerprints_parse_each_module_once(monkeypatch):
    """Eighteen fingerprints share one parse of each package module (the pipeline tests call this often)."""
    from instrclf import fingerprint

    expected, parsed = fingerprints(ROOT), []
    real = fingerprint.imported_modules
    monkeypatch.setattr(fingerprint, "imported_modules", lambda root, path, **k: parsed.append(Path(path)) or real(root, path, **k))
    assert fingerprint.fingerprints(ROOT) == expected
    modules = [p for p in parsed if "instrclf" in p.parts]
    assert modules and len(modules) == len(set(modules))
