"""dvc.yaml hashes all the code each stage runs: each stage depends on its script's fingerprint."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from instrclf import settings
from instrclf.errors import ParameterError
from instrclf.fingerprint import by_model, fingerprints
from instrclf.settings import MODEL_NAMES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "instrclf"


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def script_of(stage: dict) -> Path:
    return ROOT / re.search(r"python (stages/\S+\.py)", stage["cmd"]).group(1)


@pytest.mark.parametrize("name", sorted(set(stages()) - {"code"}))
def test_a_stage_depends_on_its_fingerprint_and_lists_no_code(name):
    """Its script's fingerprint stands for every module the script runs; a model stage has its model's."""
    stage = stages()[name]
    script = script_of(stage)
    deps = [d for d in stage["deps"] if isinstance(d, str)]
    own = f"code/{script.stem}-${{item.model}}.sha256" if by_model(ROOT, script) else f"code/{script.stem}.sha256"
    assert own in deps, f"dvc.yaml stage {name} must depend on {own}"
    assert not by_model(ROOT, script) or "model" in stage.get("matrix", {}), f"{name} builds models: a matrix over them"
    listed = [d for d in deps if d.startswith(("code/", "stages", PACKAGE))]
    assert listed == [own], f"dvc.yaml stage {name} lists code {listed}: only its fingerprint"


def test_stage_code_fingerprints_every_stage_from_the_whole_code():
    """Stage code reads every script and module (any edit reruns it) and writes exactly the fingerprints
    the other stages depend on, one per script or one per script and model."""
    code = stages()["code"]
    assert code["deps"] == ["stages", PACKAGE] and code["outs"] == ["code"]
    assert script_of(code) == ROOT / "stages/code.py" and "--out code" in code["cmd"]
    wanted = set()
    for name, stage in stages().items():
        for dep in stage["deps"]:
            if isinstance(dep, str) and dep.startswith("code/"):
                wanted |= {dep.replace("${item.model}", m) for m in (MODEL_NAMES if "${item.model}" in dep else [""])}
    assert {f"code/{f}" for f in fingerprints(ROOT)} == wanted


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
    (tmp_path / "code").mkdir()
    (tmp_path / "code/download.sha256").write_text(fingerprints(ROOT)["download.sha256"])
    for dep in stage["deps"]:
        if not dep.startswith(("/", "$", "code/")):
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


def test_a_model_stage_runs_its_own_back_end_and_no_other():
    """Editing one model's back end reruns that model's stages only (tests/test_pipeline.py measures it)."""
    backends = sorted(p.stem for p in (ROOT / PACKAGE / "backends").glob("*.py") if p.stem != "__init__")
    assert backends == sorted(MODEL_NAMES)  # one module per model, one model per module
    for name, text in fingerprints(ROOT).items():
        listed = [line.split("  ", 1)[1] for line in text.splitlines() if f" {PACKAGE}/backends/" in line]
        stem, _, model = name.removesuffix(".sha256").partition("-")
        if stem in ("train", "predict", "export"):
            assert listed == [f"{PACKAGE}/backends/__init__.py", f"{PACKAGE}/backends/{model}.py"], name
        else:
            assert listed == [] and not model, f"{name} runs a back end"


def test_clean_reads_the_raw_folder_through_downloads_checksum_list():
    """clean runs on data/raw but depends on data/raw.sha256, which download writes beside it, so that a
    changed raw file still reruns clean while DVC walks the raw files once per status, not twice."""
    download, clean = stages()["download"], stages()["clean"]
    assert {"data/raw", "data/raw.sha256"} <= set(download["outs"]) and "--checksums data/raw.sha256" in download["cmd"]
    assert "data/raw.sha256" in clean["deps"] and "data/raw" not in clean["deps"] and "--raw data/raw " in clean["cmd"]
