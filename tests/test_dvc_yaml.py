"""dvc.yaml hashes all the code each stage runs: its deps are its script's import closure."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from instrclf import settings
from instrclf.errors import ParameterError
from instrclf.settings import MODEL_NAMES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "instrclf"

#: Packages that import their submodules by name (``importlib``): each model's back end is
#: ``instrclf.backends.<name>``. A matrix stage over the models lists its own
#: (``instrclf/backends/${item.model}.py``), so editing one model reruns that model's stages only.
BY_NAME = {"instrclf.backends": [f"instrclf.backends.{name}" for name in MODEL_NAMES]}


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path:
    """``instrclf.sources.soundfont`` -> its file (package ``__init__.py`` or module ``.py``)."""
    path = ROOT.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported_modules(path: Path, *, package: str | None) -> set:
    """Project modules a file imports anywhere in it (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                # keep the longest prefix that is a module of the project
                parts = name.split(".")
                while parts and not module_file(".".join(parts)).is_file():
                    parts.pop()
                if parts:
                    found.add(".".join(parts))
    return found


def closure(script: Path) -> set:
    """Every project module a stage script runs: its imports, theirs, and each parent package."""
    todo = imported_modules(script, package=None)
    seen = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo |= {".".join(parts[:i]) for i in range(1, len(parts))}  # parents' __init__ run first
        path = module_file(name)
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        todo |= imported_modules(path, package=package) - seen
        todo |= set(BY_NAME.get(name, ())) - seen
    return {module_file(n).relative_to(ROOT).as_posix() for n in seen}


def covered(path: str, deps: list) -> bool:
    """Whether a deps entry is ``path`` or a folder above it; ``${item.model}`` stands for every model."""
    deps = [d.replace("${item.model}", m) for d in deps for m in (MODEL_NAMES if "${item.model}" in d else [""])]
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", sorted(stages()))
def test_deps_list_every_module_the_stage_imports(name):
    stage = stages()[name]
    script = re.search(r"python (stages/\S+\.py)", stage["cmd"]).group(1)
    deps = [d for d in stage["deps"] if isinstance(d, str)]
    assert script in deps
    needed = closure(ROOT / script)
    missing = sorted(p for p in needed if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name} runs {missing} but does not list them in deps"
    listed = {d for d in deps if d.startswith(PACKAGE + "/")}
    unused = sorted(d for d in listed if not any(covered(p, [d]) for p in needed))
    assert not unused, f"dvc.yaml stage {name} lists {unused}, which its script never imports"


def test_closure_follows_imports_inside_functions_and_relative_ones():
    needed = closure(ROOT / "stages/train.py")
    assert "instrclf/train.py" in needed  # imported inside main()
    assert "instrclf/instruments.py" in needed  # only through settings' relative import
    assert "instrclf/backends/lstm.py" in needed  # imported by name (importlib)
    assert "instrclf/__init__.py" in needed


def test_download_deps_list_the_default_libraries():
    from instrclf import settings
    from instrclf.sources.soundfont import libraries

    params = settings.load(ROOT / "params.yaml")
    names = settings.section(params, settings.SoundfontSettings).libraries
    deps = stages()["download"]["deps"]
    for library in libraries.resolve(names, check=False):
        assert str(library.path) in deps, f"dvc.yaml download must list {library.path} ({library.name})"


def test_changing_the_local_folder_marks_download_changed(tmp_path):
    """Five rows removed from the local set's metadata: `dvc status` names download (it used not to)."""
    import shutil
    import subprocess
    import sys

    from synthetic import make_raw_dir

    dvc = Path(sys.executable).parent / "dvc"
    stage = dict(stages()["download"])
    stage["cmd"] = "mkdir -p data/raw && echo made > data/raw/made && echo sums > data/raw.sha256"  # the real deps and params, a cheap command
    for dep in stage["deps"]:
        if not dep.startswith(("/", "$")):
            (tmp_path / dep).parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if (ROOT / dep).is_dir() else shutil.copy2)(ROOT / dep, tmp_path / dep)
    stage["deps"] = [d for d in stage["deps"] if not d.startswith("/") or Path(d).is_file()]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"download": stage}}))
    shutil.copy2(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copy2(ROOT / ".dvcignore", tmp_path / ".dvcignore")
    own = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["local"]["path"]
    rows = [(f"Winds/Flute/ordinario/Fl-ord-{n}-mf-N-N.wav", i % 5, "Winds", "Fl") for i, n in enumerate(("C4", "D4", "E4", "F4", "G4", "A4", "B4", "C5"))]
    make_raw_dir(tmp_path / own, rows=rows)
    shutil.copy2(ROOT / own / "README.md", tmp_path / own / "README.md")

    def dvc_run(*args):
        proc = subprocess.run([dvc, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    dvc_run("init", "--no-scm", "-q")
    dvc_run("repro", "-q", "download")
    assert "up to date" in dvc_run("status", "download")
    (tmp_path / own / "README.md").write_text("edited: not part of the hash")
    assert "up to date" in dvc_run("status", "download")
    metadata = tmp_path / own / "TinySOL_metadata.csv"
    metadata.write_text("".join(metadata.read_text().splitlines(keepends=True)[:-5]))
    status = dvc_run("status", "download")
    assert "up to date" not in status and "changed deps" in status, status
    assert any(line.split() == ["modified:", own] for line in status.splitlines()), status


@pytest.mark.parametrize("name", sorted(stages()))
def test_params_list_exactly_the_keys_the_stage_reads(name):
    """dvc.yaml's params of a stage are its script's PARAMS, which is all that settings.load gives the stage."""
    stage = stages()[name]
    script = re.search(r"python (stages/\S+\.py)", stage["cmd"]).group(1)
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    declared = [key.replace("<model>", "${item.model}") for key in module.PARAMS]
    assert stage.get("params", []) == declared, f"dvc.yaml stage {name} params {stage['params']} != {script} PARAMS {declared}"


def test_a_stage_cannot_read_a_key_it_does_not_declare(tmp_path):
    """settings.load(keys=...) hands a stage only its keys: reading another fails naming it."""
    params = settings.load(ROOT / "params.yaml", keys=["train.models", "split.test_folds"])
    assert params == {"train": {"models": settings.load(ROOT / "params.yaml")["train"]["models"]},
                      "split": {"test_folds": [0, 1, 2, 3, 4]}}
    with pytest.raises(ParameterError, match=r"^params.yaml has no key 'train.patience'$"):
        settings.TrainSettings.key(params, "patience")
    with pytest.raises(ParameterError, match=r"^params.yaml has no key 'data.nope'$"):
        settings.load(ROOT / "params.yaml", keys=["data.nope"])


def test_a_model_stage_lists_its_own_back_end_and_no_other():
    """Editing one model's back end reruns that model's stages only (tests/test_pipeline.py measures it)."""
    backends = sorted(p.stem for p in (ROOT / PACKAGE / "backends").glob("*.py") if p.stem != "__init__")
    assert backends == sorted(MODEL_NAMES)  # one module per model, one model per module
    for name, stage in stages().items():
        listed = [d for d in stage["deps"] if isinstance(d, str) and d.startswith(f"{PACKAGE}/backends/")]
        if name in ("train", "predict", "export"):
            assert listed == [f"{PACKAGE}/backends/__init__.py", f"{PACKAGE}/backends/${{item.model}}.py"], name
        else:
            assert listed == [], f"{name} depends on a back end"


def test_clean_reads_the_raw_folder_through_downloads_checksum_list():
    """clean runs on data/raw but depends on data/raw.sha256, which download writes beside it, so that a
    changed raw file still reruns clean while DVC walks the raw files once per status, not twice."""
    download, clean = stages()["download"], stages()["clean"]
    assert {"data/raw", "data/raw.sha256"} <= set(download["outs"]) and "--checksums data/raw.sha256" in download["cmd"]
    assert "data/raw.sha256" in clean["deps"] and "data/raw" not in clean["deps"] and "--raw data/raw " in clean["cmd"]
