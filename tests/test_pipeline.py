"""End to end: the real `dvc repro` in temporary copies of the project, on tiny parameters."""

import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from synthetic import TINY_PARAMS, tone

from instrclf import layout, models
from instrclf.fingerprint import fingerprints
from instrclf.summary import FOLD_KEYS, mean_std

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LIBRARIES = ["TimGM6mb", "sf_GMbank"]
FOLDS = [0, 1]
MODELS = TINY_PARAMS["train"]["models"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(Path(f"/usr/share/sounds/sf2/{name}.sf2").is_file() for name in LIBRARIES),
        reason="the Debian SoundFonts are not installed (make test installs them)",
    ),
]


def tiny_params(models=MODELS) -> dict:
    """The project's params.yaml with a tiny two-library set, two folds, small models and one epoch."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["soundfont"].update(libraries=LIBRARIES, max_notes_per_instrument=10, note_seconds=[0.4, 0.8])
    for section in ("clean", "features", "export", "models"):
        params[section] = copy.deepcopy(TINY_PARAMS[section])
    params["split"] = {"test_folds": FOLDS, "unseen_library": LIBRARIES[-1]}
    params["train"].update(models=list(models), warmup_epochs=0.0)
    for config in params["models"].values():
        config["epochs"] = 1
    return params


def run(cmd, cwd, check=True, **kwargs):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    if check:
        assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def prepare_repo(dest: Path, params: dict) -> Path:
    """A git repository holding the project's tracked and new files (not its outputs), before `dvc repro`."""
    files = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file() and not rel.startswith(("metrics/", "plots/", "dvc.lock")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], dest)
    return dest


def make_repo(dest: Path, params: dict) -> Path:
    """:func:`prepare_repo`, then `dvc repro`."""
    run([BIN / "dvc", "repro"], prepare_repo(dest, params), timeout=1200)
    return dest


@pytest.fixture(scope="module")
def cold_runs(tmp_path_factory):
    """The tiny project run twice from cold, side by side: ``(project, (other project, its running repro))``.

    Most of a tiny stage's time is one process importing TensorFlow: two runs at once use
    both cores, so the second run (compared byte for byte with the first by
    :func:`test_two_cold_runs_give_the_same_dvc_lock_and_check_out_each_others`) costs little
    wall time.
    """
    base = tmp_path_factory.mktemp("e2e")
    other = prepare_repo(base / "again", tiny_params())
    log = open(base / "again.log", "w")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([BIN / "dvc", "repro"], cwd=other, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield make_repo(base / "project", tiny_params()), (other, proc, base / "again.log")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()


@pytest.fixture(scope="module")
def repo(cold_runs):
    return cold_runs[0]


def test_raw_data_has_tinysol_layout_with_every_library(repo):
    meta = layout.read_metadata(repo / "data/raw")
    assert sorted(meta["library"].unique()) == sorted(LIBRARIES)
    assert set(meta["fold"]) == set(range(5))


def test_summary_is_mean_and_std_of_the_per_fold_files(repo):
    for name in MODELS:
        summary = json.loads((repo / f"metrics/{name}.json").read_text())
        per_fold = json.loads((repo / f"results/predict/{name}.json").read_text())["folds"]
        assert sorted(per_fold) == [str(f) for f in FOLDS] and summary["folds"] == len(FOLDS)
        for key in FOLD_KEYS:
            mean, std = mean_std([per_fold[str(f)][key] for f in FOLDS])
            assert summary[f"{key}_mean"] == pytest.approx(mean, abs=1e-4), (name, key)
            assert summary[f"{key}_std"] == pytest.approx(std, abs=1e-4), (name, key)
        for value in summary.values():
            assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_every_seen_note_is_tested_once_and_unseen_notes_by_the_ensemble(repo):
    meta = layout.read_metadata(repo / "data/raw")
    seen = meta[(meta["library"] != LIBRARIES[-1]) & meta["fold"].isin(FOLDS)]
    unseen = meta[meta["library"] == LIBRARIES[-1]]
    for name in MODELS:
        table, labels = layout.read_predictions(repo / f"data/predictions/{name}.csv")
        test = table[table["set"] == "test"]
        assert sorted(test["Path"]) == sorted(seen["Path"])  # silent notes aside, none here
        assert sorted(table.loc[table["set"] == "unseen", "Path"]) == sorted(unseen["Path"])
        model, card = models.load(repo / f"models/{name}.keras")
        assert card.test_folds == FOLDS and card.unseen_library == LIBRARIES[-1]
        assert models.shift_average_of(model) == tiny_params()["predict"]["shift_average"] > 0  # the stage passes the knob on
        assert model.output_shape[-1] == len(labels)


def test_plot_data_is_strict_json_and_images_exist(repo):
    def strict(path):
        return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c} in {path}"))

    roc = strict(repo / "plots/data/roc.json")
    assert {row["series"] for row in roc} == set(MODELS)
    for name in MODELS:
        assert strict(repo / f"plots/data/confusion/{name}.json")
        assert len({row["series"] for row in strict(repo / f"plots/data/roc_classes/{name}.json")}) > 1
        assert (repo / f"plots/images/{name}.png").stat().st_size > 10_000
    assert (repo / "plots/images/comparison.png").stat().st_size > 10_000
    assert (repo / "plots/clean/threshold.png").stat().st_size > 10_000


def test_every_model_has_an_error_report_of_its_wrong_notes(repo):
    import re as regex

    for name in MODELS:
        table, _ = layout.read_predictions(repo / f"data/predictions/{name}.csv")
        wrong = table[table["label"] != table["predicted"]]
        page = (repo / f"reports/{name}/index.html").read_text()
        rows = json.loads(regex.search(r'id="data">(.*?)</script>', page, regex.S).group(1))["rows"]
        assert sorted(r["Path"] for r in rows) == sorted(wrong["Path"])
        for pack in {row["pack"] for row in rows}:  # each wrong note's audio and image, in the pack its row names
            script = (repo / f"reports/{name}/media/{pack:04d}.js").read_text()
            assert all(f'"{row["media"]}":["' in script for row in rows if row["pack"] == pack)


def test_dvc_is_up_to_date_and_shows_one_row_per_model(repo):
    assert "up to date" in run([BIN / "dvc", "status"], repo).stdout.lower()
    table = run([BIN / "dvc", "metrics", "show"], repo).stdout.splitlines()
    rows = [line.split()[0] for line in table[1:] if line.strip()]
    assert sorted(rows) == sorted([*(f"metrics/{name}.json" for name in MODELS), *(f"results/export/{name}.json" for name in MODELS)])
    run([BIN / "dvc", "plots", "show"], repo)
    html = (repo / "dvc_plots/index.html").read_text()
    assert "cdn.jsdelivr" not in html and "vegaEmbed" in html


def test_a_no_op_repro_is_fast(repo):
    proc = run([BIN / "dvc", "repro"], repo)
    assert "Stage 'download' didn't change" in proc.stdout or "up to date" in proc.stdout.lower()


TRAIN = {f"train@{m}-{f}" for m in MODELS for f in FOLDS}
PREDICT = {f"predict@{m}" for m in MODELS}
REPORT = {f"report@{m}" for m in MODELS}
EXPORT = {f"export@{m}" for m in MODELS}
EVERY = {"download", "clean", "features", *TRAIN, *PREDICT, "summary", "plot", *REPORT, *EXPORT}

#: What reruns when you change what: (change, the stages `dvc status` must report). A change is a
#: params key set to a new value, or a comment appended to a package module. The README's table
#: "What reruns when you change what" is this one for the default run.
RERUNS = [
    ("data.soundfont.jobs=1", {"download"}),  # speed only: the output is byte-identical, so nothing after it
    ("data.soundfont.snr_db=[30, 60]", {"download"}),
    ("data.target=family", {"clean", *TRAIN}),
    ("seed=8", {"download", *TRAIN}),
    ("clean.envelope_ms=40", {"clean", "features", *TRAIN}),
    ("features.n_mels=24", {"features", *TRAIN}),
    ("split.unseen_library=TimGM6mb", {*TRAIN, *PREDICT}),
    ("predict.shift_average=0", PREDICT),
    ("train.patience=1", TRAIN),
    ("train.augment.eq_db=3", TRAIN),
    ("models.lstm.units=12", {f"train@lstm-{f}" for f in FOLDS}),
    ("models.conv2d.dropout=0.3", {f"train@conv2d-{f}" for f in FOLDS}),
    ("export.formats=[tflite, onnx]", EXPORT),
    ("# instrclf/backends/lstm.py", {*(f"train@lstm-{f}" for f in FOLDS), "predict@lstm", "export@lstm"}),
    ("# instrclf/backends/__init__.py", {*TRAIN, *PREDICT, *EXPORT}),
    ("# instrclf/train.py", TRAIN),
    ("# instrclf/models.py", {*TRAIN, *PREDICT, *EXPORT}),
    ("# instrclf/card.py", {*TRAIN, *PREDICT, *EXPORT}),  # the card: every stage that writes or reads one
    ("# instrclf/litert.py", EXPORT),  # the LiteRT runtime: the exports' parity and metadata
    ("# instrclf/features.py", {"features", *TRAIN, *PREDICT, *EXPORT}),
    ("# instrclf/predict.py", PREDICT),
    ("# instrclf/evaluate.py", {*PREDICT, "plot", *EXPORT}),  # export counts file accuracy as predict does
    ("# instrclf/plots.py", {"plot"}),
    ("# instrclf/figures.py", {"plot"}),
    ("# instrclf/clean_figure.py", {"clean"}),
    ("# instrclf/clean.py", {"clean"}),
    ("# instrclf/summary.py", {"summary"}),
    ("# instrclf/sources/soundfont/render.py", {"download"}),
    ("# instrclf/report.py", REPORT),
    ("# instrclf/export.py", EXPORT),
    ("# instrclf/settings.py", EVERY - REPORT),  # the report reads no params (export does not either, but imports settings)
    ("# instrclf/layout.py", EVERY),
    ("# instrclf/cli.py", set()),
    ("# stages/summary.py", {"summary"}),  # a stage script: its own stage
    ("# instrclf/compare.py", set()),
]


def listed_by(module: str) -> set:
    """The tiny pipeline's stages whose fingerprint (stage code's ``code/<script>[-<model>].sha256``) lists ``module``."""
    prints = fingerprints(ROOT)
    found = set()
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        items = [{"model": m, "fold": f} for m in MODELS for f in FOLDS] if name == "train" else [{"model": m} for m in MODELS]
        for item in items if "matrix" in stage else [{}]:
            own = [d.replace("${item.model}", item.get("model", "")) for d in stage["deps"] if d.startswith("code/")]
            if any(line.endswith(f"  {module}") for dep in own for line in prints[dep.removeprefix("code/")].splitlines()):
                found.add(f"{name}@{item['model']}-{item['fold']}" if "fold" in item else f"{name}@{item['model']}" if item else name)
    return found


#: Every other module of the package, a comment each: exactly the stages whose scripts import it
#: rerun (tests/test_fingerprint.py holds the fingerprints to the import closures).
RERUNS += [
    (f"# {module}", listed_by(module))
    for module in sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "instrclf").rglob("*.py"))
    if f"# {module}" not in {change for change, _ in RERUNS}
]


def changed_stages(repo) -> set:
    """The stages `dvc status` reports as changed (a matrix stage by its full name).

    DVC's own status, called in this process: the same answer as the command, without its
    second of start-up for each of the rows below.
    """
    from contextlib import chdir

    from dvc.repo import Repo

    with chdir(repo), Repo(".") as dvc:  # stage names are relative to the working directory
        return set(dvc.status())


@pytest.mark.parametrize(("change", "expected"), RERUNS, ids=[change for change, _ in RERUNS])
def test_a_change_reruns_exactly_the_stages_it_touches(repo, change, expected):
    """A params change: `dvc status` names the stages. A code change: stage code reruns first (written
    here as it writes them), then the stages whose fingerprint changed."""
    code = change.startswith("# ")
    path = repo / (change[2:] if code else "params.yaml")
    original = path.read_text()

    def write_fingerprints():
        for name, text in fingerprints(repo).items():
            (repo / "code" / name).write_text(text)

    if code:
        path.write_text(original + "\n# a comment changes no behaviour\n")
        write_fingerprints()
    else:
        key, value = change.split("=", 1)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        *parents, last = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        assert last in node, f"params.yaml has no {key}"
        node[last] = yaml.safe_load(value)
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        changed = changed_stages(repo)
    finally:
        path.write_text(original)
        if code:
            write_fingerprints()
    expected = expected | {"code"} if code else expected
    assert changed == expected, f"{change}: reruns {sorted(changed - expected)} too, misses {sorted(expected - changed)}"


def test_a_code_edit_reruns_its_stages_through_stage_code(repo):
    """The real mechanism, not its imitation above: `dvc repro` after a comment in instrclf/summary.py
    runs stage code, whose new fingerprint reruns summary and nothing else; undone, the same."""
    path = repo / "instrclf/summary.py"
    original = path.read_text()
    try:
        path.write_text(original + "\n# a comment changes no behaviour\n")
        ran = re.findall(r"^Running stage '([^']+)'", run([BIN / "dvc", "repro"], repo).stdout, re.M)
        assert ran == ["code", "summary"]
    finally:
        path.write_text(original)
    ran = re.findall(r"^Running stage '([^']+)'", run([BIN / "dvc", "repro"], repo).stdout, re.M)
    assert set(ran) <= {"code", "summary"}  # both may come back from DVC's run cache instead
    assert "up to date" in run([BIN / "dvc", "status"], repo).stdout.lower()


def _hashes(lock: dict) -> dict:
    """``(stage, deps|outs, path) -> hash`` of a dvc.lock, the timing files aside; params as they are."""
    found = {}
    for name, stage in lock["stages"].items():
        found[name, "params"] = stage.get("params")
        for kind in ("deps", "outs"):
            for entry in stage.get(kind, []):
                if not entry["path"].startswith("results/timings/"):
                    found[name, kind, entry["path"]] = entry.get("md5")
    return found


def test_two_cold_runs_give_the_same_dvc_lock_and_check_out_each_others(repo, cold_runs):
    """Every cached output is byte-identical for the same inputs: models, curves, figures, data."""
    other, proc, log = cold_runs[1]
    assert proc.wait(timeout=1200) == 0, f"the second cold run failed:\n{log.read_text()[-3000:]}"
    lock, again = (yaml.safe_load((r / "dvc.lock").read_text()) for r in (repo, other))
    assert {stage for stage in lock["stages"] if stage.startswith("train@")} == {
        f"train@{m}-{f}" for m in MODELS for f in FOLDS
    }
    first, second = _hashes(lock), _hashes(again)
    assert first.keys() == second.keys()
    assert [key for key in first if first[key] != second[key]] == []
    # the other run's lock checks out from this run's cache: nothing to retrain
    shutil.copy(other / "dvc.lock", repo / "dvc.lock")
    for timing in (other / "results/timings").rglob("*.json"):
        shutil.copy(timing, repo / timing.relative_to(other))
    run([BIN / "dvc", "checkout"], repo)
    assert "up to date" in run([BIN / "dvc", "status"], repo).stdout.lower()


def test_a_remote_serves_a_fresh_clone_without_training(repo, tmp_path):
    """Push every output to a local-directory remote; a fresh clone pulls it and is up to date."""
    remote = tmp_path / "remote"
    run([BIN / "dvc", "remote", "add", "-d", "--local", "store", str(remote)], repo)
    run([BIN / "dvc", "push"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run", "--allow-empty"], repo)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run([BIN / "dvc", "remote", "add", "-d", "--local", "store", str(remote)], clone)
    run([BIN / "dvc", "pull"], clone)
    assert "up to date" in run([BIN / "dvc", "status"], clone).stdout.lower()
    assert (clone / "reports/conv1d/index.html").read_bytes() == (repo / "reports/conv1d/index.html").read_bytes()
    name = (clone / "data/clean/index.csv").read_text().splitlines()[1].split(",")[0]
    run([BIN / "instrclf", "window", "data/clean", name, "-o", "window.wav"], clone)
    window = clone / "window.wav"
    out = run([BIN / "instrclf", "classify", "--model", "models/conv1d.keras", str(window)], clone).stdout
    assert out.startswith(str(window)) and "%" in out
    # one model from the registry, without a clone: a registered version, then `dvc artifacts get <git URL> <name>`
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "conv1d-tflite@v1.0.0", "-m", "conv1d"], repo)
    config = tmp_path / "remote.config"
    config.write_text(f'[core]\n    remote = store\n[\'remote "store"\']\n    url = {remote}\n')
    shop = tmp_path / "elsewhere"
    shop.mkdir()
    run([BIN / "dvc", "artifacts", "get", str(repo), "conv1d-tflite", "--config", str(config)], shop)
    assert [p.name for p in shop.iterdir()] == ["conv1d.tflite"]
    assert (shop / "conv1d.tflite").read_bytes() == (repo / "models/export/conv1d/conv1d.tflite").read_bytes()



def test_after_a_failed_stage_checkout_and_git_bring_every_output_back(repo):
    """DVC deletes a stage's outputs before it runs: the cached ones come back from the cache, the others from git."""
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run", "--allow-empty"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["clean"]["envelope_ms"] = -5
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    failed = run([BIN / "dvc", "repro", "clean"], repo, check=False)
    assert failed.returncode != 0 and "clean.envelope_ms" in failed.stderr
    assert not (repo / "data/clean").exists() and not (repo / "plots/clean/threshold.png").exists()
    run(["git", "checkout", "HEAD", "--", "params.yaml"], repo)
    run([BIN / "dvc", "checkout", "--force"], repo)
    assert (repo / "data/clean/index.csv").is_file() and (repo / "results/clean.json").is_file()
    assert not (repo / "plots/clean/threshold.png").exists()  # cache: false: DVC cannot bring it back
    run(["git", "checkout", "HEAD", "--", "metrics", "plots", "results"], repo)
    assert "up to date" in run([BIN / "dvc", "status"], repo).stdout.lower()


# --------------------------------------------------------------------------- the README, executed

#: A ```bash block of the README, with the reason it is not run here when it has one.
README_BLOCK = re.compile(r"(?:<!-- readme-test: skip \((?P<skip>[^)]+)\) -->\n)?```bash\n(?P<body>.*?)```", re.S)


def readme_blocks() -> list:
    """``(skip reason or None, commands)`` of every ```bash block of the README, in order."""
    return [(m["skip"], m["body"]) for m in README_BLOCK.finditer((ROOT / "README.md").read_text(encoding="utf-8"))]


def example_output(blocks, command: str) -> str:
    """The output line the README shows, as a ``# ...`` comment right after ``command``."""
    lines = "\n".join(body for skip, body in blocks if skip is None).splitlines()
    return next(lines[i + 1] for i, line in enumerate(lines) if line.startswith(command))[2:]


def test_the_readme_commands_work_as_written(repo, tmp_path):
    """Every ```bash block of the README that is not marked as skipped runs, in order, on the tiny project."""
    blocks = readme_blocks()
    assert len(blocks) >= 8 and sum(skip is None for skip, _ in blocks) >= 3
    # A user's clone: the virtualenv at .venv, a history with the run committed.
    (repo / ".venv").symlink_to(BIN.parent)
    with open(repo / ".git/info/exclude", "a") as f:
        f.write(".venv\n")
    run(["git", "add", "-A"], repo)
    for message in ("run", "later"):
        run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message, "--allow-empty"], repo)
    # The recordings the classify example names.
    rng = np.random.default_rng(0)
    (repo / "recordings").mkdir()
    for name in ("my_flute.wav", "cello.flac", "recordings/a.wav", "recordings/b.wav"):
        sf.write(repo / name, tone(440.0, sample_rate=22050, seconds=1.5, rng=rng), 22050)
    models_before = sorted(p.name for p in (repo / "models").glob("*.keras"))

    script = "set -euo pipefail\n" + "\n".join(body for skip, body in blocks if skip is None)
    out = run(["bash", "-c", script], repo, timeout=900).stdout.splitlines()

    # classify prints what the README shows, in the same form
    shown = example_output(blocks, "instrclf classify --model models/conv2d.keras my_flute.wav")
    name, probabilities = shown.split(": ", 1)
    form = re.escape(name) + ": " + ", ".join([r"[A-Za-z]+ \d{1,3}\.\d%"] * len(probabilities.split(", ")))
    assert any(re.fullmatch(form, line) for line in out), (form, out)
    labels = [json.loads(line) for line in (repo / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 2 and all(len(row["top"]) == 5 for row in labels)
    # the experiments ran with --temp, and the way back restored the committed run
    assert len(run([BIN / "dvc", "exp", "ls", "--name-only"], repo).stdout.split()) == 3
    assert sorted(p.name for p in (repo / "models").glob("*.keras")) == models_before
    assert run(["git", "status", "--porcelain", "--", "params.yaml", "dvc.lock", "metrics", "plots"], repo).stdout == ""
    assert "up to date" in run([BIN / "dvc", "status"], repo).stdout.lower()
    # the experiment tables fit a screen
    exps = run([BIN / "instrclf", "compare", "--exps"], repo).stdout.splitlines()
    assert len(exps) == 2 + 4 + 4 + 4 + 2 and max(map(len, exps)) <= 100  # baseline, dropout, one fold: 4 models; then 2
