import html.parser
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from instrclf import evaluate, plots
from instrclf.errors import DataError, InstrclfError, ParameterError

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["Fl", "Ob", "Tbn", "Vn"]
PNG = b"\x89PNG\r\n\x1a\n"


def predictions(*, n_files=40, skill=1.5, seed=0, labels=LABELS):
    """File-level predictions of a synthetic model: the true class gets ``skill`` extra logit."""
    rng = np.random.default_rng(seed)
    actual = [labels[i % len(labels)] for i in range(n_files)]
    logits = rng.normal(size=(n_files, len(labels)))
    logits[np.arange(n_files), [labels.index(a) for a in actual]] += skill
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    index = pd.DataFrame({"Path": [f"n{i:03d}.wav" for i in range(n_files)], "fold": 0, "label": actual})
    return evaluate.aggregate(index, probs, labels=labels)


def strict_json(path):
    """Parse JSON, failing on the bare NaN / Infinity / -Infinity Python's json would accept."""

    def refuse(name):
        raise ValueError(f"{path} holds a bare {name}")

    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=refuse)


# --- plot data ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_points", [2, 3, 50, 299])
def test_thin_keeps_endpoints_order_and_budget(max_points):
    fpr = np.sort(np.random.default_rng(1).uniform(size=1000))
    fpr = np.concatenate([[0.0], fpr, [1.0]])
    tpr = np.sqrt(fpr)
    f, t = plots.thin(fpr, tpr, max_points=max_points)
    assert len(f) <= max_points
    assert (f[0], t[0], f[-1], t[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(f) >= 0) and np.all(np.diff(t) >= 0)
    assert set(zip(f, t, strict=True)) <= set(zip(fpr, tpr, strict=True))  # a subsequence, nothing invented


def test_thin_leaves_short_curves_alone():
    f, t = plots.thin([0, 0.5, 1], [0, 0.8, 1], max_points=3)
    assert list(f) == [0, 0.5, 1] and list(t) == [0, 0.8, 1]


@pytest.mark.parametrize("max_points", [1, 0, 2.5, True])
def test_thin_rejects_bad_budget(max_points):
    with pytest.raises(ParameterError, match="max_points"):
        plots.thin([0, 1], [0, 1], max_points=max_points)


def test_plot_data_is_strict_json_with_rows_dvc_reads(tmp_path):
    preds = predictions(n_files=400)
    plots.write_plot_data(
        preds, labels=LABELS, roc_path=tmp_path / "roc" / "m.json", confusion_path=tmp_path / "confusion" / "m.json"
    )
    roc = strict_json(tmp_path / "roc" / "m.json")
    assert 10 < len(roc) <= plots.MAX_ROC_POINTS
    assert all(set(row) == {"fpr", "tpr"} for row in roc)
    assert (roc[0], roc[-1]) == ({"fpr": 0.0, "tpr": 0.0}, {"fpr": 1.0, "tpr": 1.0})
    fpr = [row["fpr"] for row in roc]
    assert fpr == sorted(fpr)
    confusion = strict_json(tmp_path / "confusion" / "m.json")
    assert len(confusion) == len(preds) == 400
    assert confusion[0] == {"actual": preds["label"][0], "predicted": preds["predicted"][0]}


def test_micro_roc_needs_two_labels():
    with pytest.raises(DataError, match="positives and negatives"):
        plots.micro_roc(predictions(labels=["Fl"]), labels=["Fl"])


def test_class_rocs_skip_classes_absent_from_the_test_set():
    preds = predictions(labels=LABELS)
    preds = preds[preds["label"] != "Vn"].reset_index(drop=True)
    assert list(plots.class_rocs(preds, labels=LABELS)) == ["Fl", "Ob", "Tbn"]


# --- images and the stage ----------------------------------------------------------------


def load_stage():
    spec = importlib.util.spec_from_file_location("plot_stage", ROOT / "stages" / "plot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_writes_plot_data_and_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("train:\n  models: [good, poor]\n", encoding="utf-8")
    for name, skill in [("good", 3.0), ("poor", 0.5)]:
        evaluate.write_predictions(f"data/predictions/{name}.csv", predictions(skill=skill, seed=len(name)))
    Path("data/predictions/stale.csv").write_text("not read: not in train.models", encoding="utf-8")
    args = "--predictions data/predictions --roc plots/roc --confusion plots/confusion"
    load_stage().main([*args.split(), "--images", "plots/images/models", "--comparison", "plots/images/comparison.png"])
    for sub in ("roc", "confusion"):
        assert sorted(p.name for p in Path("plots", sub).iterdir()) == ["good.json", "poor.json"]
    images = sorted(Path("plots/images").rglob("*.png"))
    assert [p.relative_to("plots/images").as_posix() for p in images] == [
        "comparison.png", "models/good.png", "models/poor.png"
    ]
    assert all(p.stat().st_size > 10_000 and p.read_bytes()[:8] == PNG for p in images)


def test_stage_reports_a_missing_prediction_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("train:\n  models: [conv1d]\n", encoding="utf-8")
    args = "--predictions data/predictions --roc r --confusion c --images i --comparison x.png"
    with pytest.raises(SystemExit) as exit_:
        load_stage().main(args.split())
    assert exit_.value.code == 1
    assert "error: predictions file not found: data/predictions/conv1d.csv" in capsys.readouterr().err
    assert not Path("r").exists() and not Path("x.png").exists()


# --- dvc.yaml ------------------------------------------------------------------------------


def project_plots():
    """The top-level plots of the project's dvc.yaml as {id: props}."""
    with open(ROOT / "dvc.yaml", encoding="utf-8") as f:
        entries = yaml.safe_load(f)["plots"]
    return dict(next(iter(e.items())) if isinstance(e, dict) else (e, None) for e in entries)


def test_dvc_yaml_plots_cover_exactly_the_models_in_params():
    """DVC cannot loop over train.models in top-level plots, so dvc.yaml lists the models: keep them in step."""
    with open(ROOT / "params.yaml", encoding="utf-8") as f:
        models = yaml.safe_load(f)["train"]["models"]
    defs = project_plots()
    assert set(defs["roc"]["y"]) == {f"plots/roc/{m}.json" for m in models}
    assert (defs["roc"]["template"], defs["roc"]["x"], set(defs["roc"]["y"].values())) == ("simple", "fpr", {"tpr"})
    confusion = {k: v for k, v in defs.items() if k.startswith("confusion_")}
    assert confusion == {
        f"confusion_{m}": {
            "title": f"{m}: confusion (test fold, per note)", "template": "confusion", "x": "actual",
            "y": {f"plots/confusion/{m}.json": "predicted"},
        }
        for m in models
    }
    for metric in ("loss", "accuracy"):
        curves = {k: v for k, v in defs.items() if k.startswith(f"{metric}_")}
        assert set(curves) == {f"{metric}_{m}" for m in models}
        for m in models:
            assert curves[f"{metric}_{m}"]["x"] == "step"
            assert curves[f"{metric}_{m}"]["y"] == {
                f"plots/train/{m}/plots/metrics/{split}/{metric}.tsv": metric for split in ("train", "eval")
            }
    assert "plots/images" in defs


def test_plot_stage_outputs_match_its_command():
    with open(ROOT / "dvc.yaml", encoding="utf-8") as f:
        stage = yaml.safe_load(f)["stages"]["plot"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
    for out in outs:
        assert out in stage["cmd"].split()
    assert "data/predictions" in stage["deps"] and stage["params"] == ["train.models"]


# --- the offline page ----------------------------------------------------------------------


def test_html_template_inlines_the_bundle_and_skips_dvcs_cdn_scripts():
    page = plots.html_template("window.vegaEmbed = function () {};")
    assert "{plot_divs}" in page and "{scripts}" not in page
    assert "window.vegaEmbed = function () {};" in page
    assert "<script src" not in page and "cdn.jsdelivr" not in page


@pytest.mark.parametrize("bad", ["x = '</script>';", "/* {plot_divs} */"])
def test_html_template_refuses_a_bundle_that_would_break_the_page(bad):
    with pytest.raises(InstrclfError, match="bundle contains"):
        plots.html_template(bad)


class _Marks(html.parser.HTMLParser):
    """Per element id: the classes of every element inside it (enough to see what Vega drew)."""

    def __init__(self):
        super().__init__()
        self.stack, self.inside = [], {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for owner in {i for _, i in self.stack if i}:
            self.inside[owner].append((tag, attrs.get("class") or ""))
        element_id = attrs.get("id")
        if element_id:
            self.inside.setdefault(element_id, [])
        if tag not in {"br", "img", "input", "meta", "link", "hr"}:
            self.stack.append((tag, element_id))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break


def chromium():
    """Path of Chromium, or skip (fail under CI, where the test command installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI", "").lower() not in {"", "0", "false"}:
        pytest.fail("chromium is missing under CI: the test command (make browser) installs it")
    pytest.skip("chromium is not installed (apt-get install -y chromium); the browser test needs it")


def write_training_curves(root, model, *, epochs=4):
    """dvclive's layout: plots/train/<model>/plots/metrics/{train,eval}/{loss,accuracy}.tsv."""
    for split in ("train", "eval"):
        folder = root / "plots" / "train" / model / "plots" / "metrics" / split
        folder.mkdir(parents=True)
        steps = np.arange(1, epochs + 1)
        for metric, values in [("loss", 1.0 / steps), ("accuracy", 1 - 0.5 / steps)]:
            lines = ["step\t" + metric] + [f"{s}\t{v:.4f}" for s, v in enumerate(values)]
            (folder / f"{metric}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_dvc_plots_show_renders_offline_in_a_browser(tmp_path):
    browser = chromium()
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / "site")}
    dvc = [sys.executable, "-m", "dvc"]

    def run(*cmd):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True, timeout=120)

    run("git", "init", "-q")
    run(*dvc, "init", "-q")
    defs = project_plots()
    models = [Path(f).stem for f in defs["roc"]["y"]]
    with open(ROOT / "dvc.yaml", encoding="utf-8") as f:
        (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": yaml.safe_load(f)["plots"]}, sort_keys=False))
    for k, model in enumerate(models):
        preds = predictions(skill=1.0 + k, seed=k)
        plots.write_plot_data(
            preds, labels=LABELS, roc_path=repo / f"plots/roc/{model}.json",
            confusion_path=repo / f"plots/confusion/{model}.json",
        )
        write_training_curves(repo, model)
    image = plots.comparison_figure({models[0]: (predictions(), LABELS)})
    plots.save_figure(image, repo / "plots/images/comparison.png", dpi=30)
    plots.write_html_template(repo / ".dvc" / "plots_template.html")
    run(*dvc, "config", "plots.html_template", "plots_template.html")
    run(*dvc, "plots", "show", "-o", "out")
    page = (repo / "out" / "index.html").read_text(encoding="utf-8")
    assert "cdn.jsdelivr" not in page

    dom = subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=5000", "--dump-dom",
            (repo / "out" / "index.html").as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    parser = _Marks()
    parser.feed(dom)
    drawn = parser.inside

    def chart(plot_id):
        inside = drawn.get(plot_id, [])
        assert any(tag in {"svg", "canvas"} and "marks" in cls.split() for tag, cls in inside), f"{plot_id} not drawn"
        return [cls for _, cls in inside]

    roc = chart("roc")
    assert sum("mark-line" in c.split() for c in roc) == len(models)  # one curve per model
    for model in models:
        assert any("mark-rect" in c.split() for c in chart(f"confusion_{model}"))
        assert any("mark-line" in c.split() for c in chart(f"loss_{model}"))
        assert any("mark-line" in c.split() for c in chart(f"accuracy_{model}"))
    assert "plots_images_comparison_png" in drawn
