"""Tests of instrclf.plots: ROC and confusion plot data for ``dvc plots show``, and the offline page."""

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from synthetic import CHROMIUM_FLAGS, chromium

from instrclf import evaluate, layout, plots
from instrclf.io import write_json
from instrclf.instruments import BY_ABBR
from instrclf.errors import DataError, InstrclfError, ParameterError

LABELS = ["Fl", "Ob", "Tbn", "Vn"]


def predictions(*, n_files=40, skill=1.5, seed=0, labels=LABELS):
    """File-level predictions of a synthetic model: the true class gets ``skill`` extra logit."""
    rng = np.random.default_rng(seed)
    actual = [labels[i % len(labels)] for i in range(n_files)]
    logits = rng.normal(size=(n_files, len(labels)))
    logits[np.arange(n_files), [labels.index(a) for a in actual]] += skill
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    index = pd.DataFrame({"Path": [f"n{i:03d}.wav" for i in range(n_files)], "library": "A", "fold": 0, "label": actual})
    return evaluate.aggregate(index, probs, labels=labels)


def curve(rows, series=None):
    rows = [r for r in rows if series is None or r["series"] == series]
    return np.array([r["fpr"] for r in rows]), np.array([r["tpr"] for r in rows])


# --- thinning -------------------------------------------------------------------------------


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


def test_thin_roc_adds_no_gap_on_a_log_axis():
    """Thinning along the linear curve alone leaves gaps where the log axis looks; thin_roc does not."""
    preds = predictions(n_files=3000, skill=1.0, seed=3)
    fpr, tpr = plots.micro_roc(preds, labels=LABELS)
    f, t = plots.thin_roc(fpr, tpr)
    assert len(f) <= plots.MAX_ROC_POINTS < len(fpr) and np.all(np.diff(f) >= 0) and np.all(np.diff(t) >= 0)
    assert set(zip(f, t, strict=True)) <= set(zip(fpr, tpr, strict=True))

    def widest_step(x, y):  # on the plot's log axis (five decades), over the points with fpr > 0
        kept = x > 0
        return float(np.max(np.hypot(np.diff(np.log10(x[kept]) / 5), np.diff(y[kept]))))

    full = widest_step(fpr, tpr)
    assert widest_step(f, t) <= full + 0.005
    assert widest_step(*plots.thin(fpr, tpr, max_points=plots.MAX_ROC_POINTS)) > full + 0.01  # what thin_roc avoids
    area = float(np.sum(np.diff(f) * (t[1:] + t[:-1]) / 2))
    assert area == pytest.approx(evaluate.roc_auc(preds, labels=LABELS)["roc_auc_micro"], abs=0.005)


@pytest.mark.parametrize("max_points", [1, 2.0, True])
def test_thin_roc_rejects_bad_budget(max_points):
    with pytest.raises(ParameterError, match="max_points"):
        plots.thin_roc([0, 1], [0, 1], max_points=max_points)


# --- ROC rows ------------------------------------------------------------------------------


@pytest.mark.parametrize("skill, seed", [(0.5, 0), (1.0, 1), (2.0, 2)])
def test_roc_rows_are_thinned_but_keep_the_area(skill, seed):
    preds = predictions(n_files=2000, skill=skill, seed=seed)
    full_fpr, _ = plots.micro_roc(preds, labels=LABELS)
    assert len(full_fpr) > plots.MAX_ROC_POINTS  # thinning has work to do
    rows = plots.roc_rows(preds, labels=LABELS, series="m")
    assert 10 < len(rows) <= plots.MAX_ROC_POINTS
    assert all(set(r) == {"series", "fpr", "tpr"} and r["series"] == "m" for r in rows)
    fpr, tpr = curve(rows)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids under the plotted points
    truth = evaluate.one_hot(preds["label"], labels=LABELS).ravel()
    expected = roc_auc_score(truth, evaluate.probabilities(preds, labels=LABELS).ravel())
    assert expected == pytest.approx(evaluate.roc_auc(preds, labels=LABELS)["roc_auc_micro"])
    assert area == pytest.approx(expected, abs=0.005)


def test_roc_rows_put_false_positive_rate_on_x():
    """A perfect model's curve goes up first: (fpr 0, tpr 1) is on it, (1, 0) is not."""
    preds = predictions(n_files=40, skill=50.0)
    assert (preds["label"] == preds["predicted"]).all()
    points = {(r["fpr"], r["tpr"]) for r in plots.roc_rows(preds, labels=LABELS, series="perfect")}
    assert (0.0, 1.0) in points and (1.0, 0.0) not in points
    # A model that ranks every true class last: the curve runs along the x axis first.
    worst = preds.copy()
    columns = [f"p_{label}" for label in LABELS]
    worst[columns] = 1.0 - worst[columns]
    points = {(r["fpr"], r["tpr"]) for r in plots.roc_rows(worst, labels=LABELS, series="worst")}
    assert (1.0, 0.0) in points and (0.0, 1.0) not in points


def test_roc_rows_are_finite_rounded_floats():
    rows = plots.roc_rows(predictions(), labels=LABELS, series="m")
    assert all(isinstance(r["fpr"], float) and isinstance(r["tpr"], float) for r in rows)
    assert all(np.isfinite([r["fpr"], r["tpr"]]).all() and r["fpr"] == round(r["fpr"], 6) for r in rows)


def test_micro_roc_needs_two_labels():
    with pytest.raises(DataError, match="positives and negatives"):
        plots.micro_roc(predictions(labels=["Fl"]), labels=["Fl"])


@pytest.mark.parametrize("absent", [[], ["Vn"], ["Ob", "Vn"]])
def test_class_roc_rows_one_series_per_class_present(absent):
    preds = predictions(n_files=200)
    preds = preds[~preds["label"].isin(absent)].reset_index(drop=True)
    present = [label for label in LABELS if label not in absent]
    assert list(plots.class_rocs(preds, labels=LABELS)) == present
    rows = plots.class_roc_rows(preds, labels=LABELS)
    assert list(dict.fromkeys(r["series"] for r in rows)) == present
    for label in present:
        fpr, tpr = curve(rows, label)
        assert len(fpr) <= plots.MAX_ROC_POINTS and np.all(np.diff(fpr) >= 0)
        assert (fpr[0], tpr[-1]) == (0.0, 1.0)
        truth = (preds["label"] == label).to_numpy()
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        assert area == pytest.approx(roc_auc_score(truth, preds[f"p_{label}"]), abs=0.01)


def test_confusion_rows_one_per_note_actual_then_predicted():
    preds = predictions(n_files=60, skill=0.3)
    assert (preds["label"] != preds["predicted"]).any()  # mistakes, so a swap would show
    rows = plots.confusion_rows(preds)
    assert rows == [{"actual": a, "predicted": p} for a, p in zip(preds["label"], preds["predicted"], strict=True)]
    assert all(list(r) == ["actual", "predicted"] for r in rows)


# --- the offline page ------------------------------------------------------------------------


CDNS = ("cdn.jsdelivr", "unpkg.com", "cdnjs", "<script src")


def test_html_template_inlines_the_bundle_and_skips_dvcs_cdn_scripts():
    page = plots.html_template("window.vegaEmbed = function () {};")
    assert page.count("{plot_divs}") == 1 and "{refresh_tag}" in page and "{scripts}" not in page
    assert "window.vegaEmbed = function () {};" in page
    assert not [cdn for cdn in CDNS if cdn in page]


def test_html_template_with_the_real_bundle_needs_no_network(tmp_path):
    pytest.importorskip("vl_convert")
    path = tmp_path / ".dvc" / "plots_template.html"
    plots.write_html_template(path)
    page = path.read_text(encoding="utf-8")
    assert page.count("{plot_divs}") == 1 and "vegaEmbed" in page and len(page) > 100_000
    assert not [cdn for cdn in CDNS if cdn in page]


@pytest.mark.parametrize("bad", ["x = '</script>';", "/* {plot_divs} */", "/* {SCRIPTS} */"])
def test_html_template_refuses_a_bundle_that_would_break_the_page(bad):
    with pytest.raises(InstrclfError, match="bundle contains"):
        plots.html_template(bad)


# --- breakdowns -----------------------------------------------------------------------------


@pytest.mark.parametrize("pitch, expected", [("A#5", "5"), ("C4", "4"), ("Db-1", "-1"), (" G2 ", "2"), ("", ""), ("N/A", ""), ("H4", "")])
def test_octave_of_a_pitch_name(pitch, expected):
    assert plots.octave(pitch) == expected


def detailed(n_files=120, *, skill=1.0, seed=0, folds=(0, 1)):
    """Synthetic predictions joined to details: instrument = label, pitch/dynamics/library cycling."""
    preds = predictions(n_files=n_files, skill=skill, seed=seed)
    preds["fold"] = [folds[i % len(folds)] for i in range(n_files)]
    preds["library"] = ["A" if i % 3 else "B" for i in range(n_files)]
    details = pd.DataFrame({
        "Path": preds["Path"],
        "instrument": preds["label"],
        "pitch": [f"C{3 + i % 4}" if i % 10 else "" for i in range(n_files)],  # every tenth without a pitch
        "dynamics": [("pp", "mf", "ff")[i % 3] for i in range(n_files)],
    })
    return plots.with_details(preds, details)


@pytest.mark.parametrize("by", plots.BREAKDOWNS)
def test_breakdown_rows_are_the_accuracy_of_each_group_and_fold(by):
    table = detailed(skill=0.8)
    rows = plots.breakdown_rows(table, by=by, series="m")
    known = table[table[by] != ""]
    assert sum(r["notes"] for r in rows) == len(known)  # every note with a value, once
    for r in rows:
        notes = known[(known[by] == r["group"]) & (known["fold"] == r["fold"])]
        assert r["notes"] == len(notes) and r["series"] == "m"
        assert r["accuracy"] == pytest.approx((notes["label"] == notes["predicted"]).mean(), abs=1e-6)
    assert len({r["accuracy"] for r in rows}) > 1  # not one number repeated


def test_breakdown_orders_octaves_by_number_and_dynamics_soft_to_loud():
    table = detailed()
    table["pitch"] = [("C10", "C9", "B-1", "C4")[i % 4] for i in range(len(table))]
    table["octave"] = table["pitch"].map(plots.octave)
    rows = plots.breakdown_table({"m": table, "n": table}, by="octave")
    order = [g for _, g in sorted({(r["order"], r["group"]) for r in rows})]
    assert order == ["-1", "4", "9", "10"]  # not "10" before "4" as text would have it
    rows = plots.breakdown_table({"m": detailed()}, by="dynamics")
    assert [g for _, g in sorted({(r["order"], r["group"]) for r in rows})] == ["pp", "mf", "ff"]


def test_breakdown_refuses_an_unknown_grouping():
    with pytest.raises(ParameterError, match="by must be one of"):
        plots.breakdown_rows(detailed(), by="pitch", series="m")


def test_with_details_names_notes_missing_from_the_metadata():
    preds = predictions(n_files=8)
    details = pd.DataFrame({"Path": preds["Path"][:5], "instrument": "Fl", "pitch": "C4", "dynamics": "mf"})
    with pytest.raises(DataError, match=r"3 predicted note\(s\) are not in the metadata: n005.wav"):
        plots.with_details(preds, details)


def test_confused_pairs_counts_the_most_frequent_mistakes_first():
    table = detailed(n_files=400, skill=0.3)
    rows = plots.confused_pairs(table, series="m", top=10)
    wrong = table[table["label"] != table["predicted"]]
    counts = wrong.groupby(["label", "predicted"]).size()
    assert len(rows) == min(10, len(counts))
    assert [r["count"] for r in rows] == sorted(counts, reverse=True)[: len(rows)]  # the largest, in order
    for r in rows:
        assert r["count"] == counts[(r["actual"], r["predicted"])] and r["actual"] != r["predicted"]
        assert r["pair"] == f"{r['actual']} \u2192 {r['predicted']}" and r["of"] == (table["label"] == r["actual"]).sum()
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    perfect = detailed(skill=50.0)
    assert plots.confused_pairs(perfect, series="m") == []


def test_training_rows_keep_loss_and_accuracy_of_every_fold():
    def curves(offset):
        return pd.DataFrame({
            "split": ["train", "train", "eval", "eval", "train"],
            "metric": ["loss", "accuracy", "loss", "accuracy", "learning_rate"],
            "step": [0, 0, 0, 0, 0],
            "value": [1.0 + offset, 0.5, 1.2, 0.4, 0.003],
        })
    rows = plots.training_rows({1: curves(0.1), 0: curves(0.0)})
    assert {(r["fold"], r["split"], r["metric"]) for r in rows} == {
        (f"fold {f}", s, m) for f in (0, 1) for s in ("train", "validation") for m in ("loss", "accuracy")
    }
    assert {r["epoch"] for r in rows} == {1}  # dvclive counts steps from 0, the plot epochs from 1
    assert [r["value"] for r in rows if r["fold"] == "fold 1" and r["split"] == "train" and r["metric"] == "loss"] == [1.1]


# --- the plot stage's inputs (layout's readers) ----------------------------------------------


def test_read_note_details_takes_pitch_and_dynamics_when_there(tmp_path):
    csv = tmp_path / "meta.csv"
    csv.write_text("Path,Fold,Family,Instrument (abbr.),Pitch,Dynamics\na.wav,0,Winds,Fl, A#5 ,pp\nb.wav,1,Strings,Vn,C3,ff\n")
    table = layout.read_note_details(csv)
    assert table.to_dict("records") == [
        {"Path": "a.wav", "instrument": "Fl", "pitch": "A#5", "dynamics": "pp"},
        {"Path": "b.wav", "instrument": "Vn", "pitch": "C3", "dynamics": "ff"},
    ]
    csv.write_text("Path,Fold,Family,Instrument (abbr.)\na.wav,0,Winds,Fl\n")  # your own set may have neither
    assert layout.read_note_details(csv).to_dict("records") == [{"Path": "a.wav", "instrument": "Fl", "pitch": "", "dynamics": ""}]


@pytest.mark.parametrize("text, message", [
    ("Path,Pitch\na.wav,C4\n", r"meta.csv: missing column\(s\) \['Instrument \(abbr.\)'\]"),
    ("Path,Instrument (abbr.)\na.wav,Fl\na.wav,Fl\n", r"meta.csv: bad metadata: a.wav is listed more than once"),
])
def test_read_note_details_names_the_file(tmp_path, text, message):
    (tmp_path / "meta.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        layout.read_note_details(tmp_path / "meta.csv")


def test_read_live_curves_reads_dvclive_folders(tmp_path):
    for split, metric, values in [("train", "loss", "1.5\n0.9"), ("eval", "accuracy", "0.4\n0.7")]:
        path = tmp_path / "plots" / "metrics" / split / f"{metric}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"step\t{metric}\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(values.split())))
    table = layout.read_live_curves(tmp_path)
    assert sorted(map(tuple, table[["split", "metric", "step", "value"]].to_numpy().tolist())) == [
        ("eval", "accuracy", 0, 0.4), ("eval", "accuracy", 1, 0.7), ("train", "loss", 0, 1.5), ("train", "loss", 1, 0.9)]
    (tmp_path / "plots" / "metrics" / "train" / "loss.tsv").write_text("step\tloss\n0\tnan?\n")
    with pytest.raises(DataError, match=r"loss.tsv: step and loss must be numbers"):
        layout.read_live_curves(tmp_path)
    with pytest.raises(DataError, match=r"empty: no dvclive curves"):
        layout.read_live_curves(tmp_path / "empty")


# --- the page `dvc plots show` makes, in a real browser ---------------------------------------

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PAGE_MODELS = {"conv1d": 3.0, "conv2d": 3.5, "lstm": 2.5, "baseline": 0.6}  # model -> skill of its synthetic predictions
INSTRUMENTS = {abbr: (inst.family, inst.name) for abbr, inst in sorted(BY_ABBR.items())}  # all 14: the default page's widths


def make_plot_project(root: Path, *, held_out=True, models=PAGE_MODELS) -> Path:
    """A git + DVC project with the plot stage's inputs (synthetic), the project's `plots:` and templates.

    Two models, test folds 0 and 1 of libraries A and B, held-out library C; then the real
    ``stages/plot.py`` writes plots/ exactly as in the pipeline.
    """
    rng = np.random.default_rng(7)
    root.mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["models"] = list(models)
    params["split"] = {"test_folds": [0, 1], "unseen_library": "C" if held_out else None}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    entries = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    plots_section = {"plots": [e for e in entries if e != "plots/clean"]}  # no clean stage here
    (root / "dvc.yaml").write_text(yaml.safe_dump(plots_section, sort_keys=False))
    _run(["git", "init", "-q"], root)
    _run([BIN / "dvc", "init", "-q"], root)
    _run([BIN / "dvc", "config", "plots.html_template", "../plots/page.html"], root)
    shutil.copytree(ROOT / ".dvc" / "plots", root / ".dvc" / "plots")
    notes = []
    for k, (library, fold) in enumerate((lib, f) for lib in ("ABC" if held_out else "AB") for f in (0, 1) for _ in range(56)):
        abbr = list(INSTRUMENTS)[k % len(INSTRUMENTS)]
        pitch, dynamics = f"{'CDEFGAB'[k % 7]}{1 + k % 7}", ("pp", "mf", "ff")[k % 3]
        notes.append({"Path": f"{abbr}/{abbr}-ord-{pitch}-{dynamics}-{library}-{k}.wav", "Fold": fold,
                      "Family": INSTRUMENTS[abbr][0], "Instrument (abbr.)": abbr, "Instrument (in full)": INSTRUMENTS[abbr][1],
                      "Pitch": pitch, "Dynamics": dynamics, "Library": library})
    meta = pd.DataFrame(notes)
    (root / "data" / "raw").mkdir(parents=True)
    meta.to_csv(root / "data" / "raw" / "TinySOL_metadata.csv", index=False)
    index = meta.rename(columns={"Library": "library", "Fold": "fold", "Instrument (abbr.)": "label"})
    for name, skill in models.items():
        logits = rng.normal(size=(len(index), len(INSTRUMENTS)))
        logits[np.arange(len(index)), [list(INSTRUMENTS).index(a) for a in index["label"]]] += skill
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        seen = (index["library"] != "C").to_numpy()
        table = evaluate.aggregate(index[seen].reset_index(drop=True), probs[seen], labels=list(INSTRUMENTS), subset="test")
        if held_out:
            unseen = evaluate.aggregate(index[~seen].reset_index(drop=True), probs[~seen], labels=list(INSTRUMENTS), subset="unseen")
            table = pd.concat([table, unseen], ignore_index=True)
        layout.write_predictions(root / "data" / "predictions" / f"{name}.csv", table)
        folds = {str(f): {"file_accuracy": 0.5 + 0.1 * f, "unseen_file_accuracy": 0.4 + 0.05 * f} for f in (0, 1)}
        (root / "results" / "predict").mkdir(parents=True, exist_ok=True)
        (root / "results" / "predict" / f"{name}.json").write_text(json.dumps({"folds": folds}))
        for fold in (0, 1):
            for split, metric in [(s, m) for s in ("train", "eval") for m in ("loss", "accuracy", "learning_rate")]:
                path = root / "plots" / "train" / name / str(fold) / "plots" / "metrics" / split / f"{metric}.tsv"
                path.parent.mkdir(parents=True, exist_ok=True)
                values = np.linspace(1.0, 0.3, 6) + (0.1 if split == "eval" else 0) + 0.05 * fold
                path.write_text("step\t" + metric + "\n" + "".join(f"{i}\t{v:.4f}\n" for i, v in enumerate(values)))
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["plot"]["cmd"].split()
    assert cmd[:2] == ["python", "stages/plot.py"]
    _run([sys.executable, str(ROOT / "stages" / "plot.py"), *cmd[2:]], root)
    return root


@pytest.fixture(scope="module")
def plot_project(tmp_path_factory):
    return make_plot_project(tmp_path_factory.mktemp("plots") / "project")


def _run(cmd, cwd):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


#: Headless Chromium as NOTES.md found it to work here (no sandbox as root, no network calls of its own).
#: Injected into a copy of the page: after Vega has drawn, write what a reader sees into the DOM.
MEASURE = """<script>
setTimeout(function () {
  var width = window.innerWidth, out = [];
  document.querySelectorAll("body > div[id]").forEach(function (div) {
    var svg = div.querySelector("svg"), img = div.querySelector("img");
    // chart titles are the largest text (facet headers are titles to Vega too): largest first
    var titles = Array.from(div.querySelectorAll(".role-title-text text"))
      .sort(function (a, b) { return parseFloat(getComputedStyle(b).fontSize) - parseFloat(getComputedStyle(a).fontSize); })
      .map(function (t) { return t.textContent; });
    var boxes = Array.from(div.querySelectorAll("svg, img")).map(function (e) { return e.getBoundingClientRect(); });
    if (!boxes.length) boxes = [div.getBoundingClientRect()];
    var imgs = Array.from(div.querySelectorAll("img"));
    out.push({id: div.id, kind: svg ? "vega" : (img ? "image" : "none"), titles: titles,
              caption: img ? div.querySelector("p").textContent.trim() : "",
              left: Math.min.apply(null, boxes.map(function (b) { return b.left; })),
              right: Math.max.apply(null, boxes.map(function (b) { return b.right; })),
              width: Math.max.apply(null, boxes.map(function (b) { return b.width; })),
              loaded: imgs.every(function (i) { return i.complete && i.naturalWidth > 0; }),
              natural: Math.max.apply(null, [0].concat(imgs.map(function (i) { return i.naturalWidth; }))),
              errors: div.querySelectorAll(".error, .vega-embed .error").length});
  });
  document.body.setAttribute("data-measured", JSON.stringify({width: width, page: document.documentElement.scrollWidth, plots: out}));
}, 4000);
</script>"""


def render_page(page: Path, *, width: int, screenshot=None) -> dict:
    """Open ``page`` in headless Chromium ``width`` px wide; what :data:`MEASURE` found."""
    probe = page.with_name(f"measured-{width}.html")
    head, body_end, tail = page.read_text(encoding="utf-8").rpartition("</body>")  # the bundle has "</body>" in strings
    probe.write_text(head + MEASURE + body_end + tail, encoding="utf-8")
    profile = page.parent / f"profile-{width}"
    base = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},1000"]
    proc = subprocess.run([*base, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180)
    match = re.search(r'data-measured="([^"]*)"', proc.stdout)
    assert match, f"Chromium drew no measurement (rc {proc.returncode}): {proc.stderr[-2000:]}"
    if screenshot is not None:
        tall = [*base[:-1], f"--window-size={width},9000", f"--screenshot={screenshot}", page.as_uri()]
        subprocess.run(tall, capture_output=True, text=True, timeout=180)
    return json.loads(html.unescape(match.group(1)))


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (make test installs it: Debian package chromium)")
def test_the_plots_page_names_every_model_and_fits_1400_and_1920_px(plot_project, tmp_path):
    _run([BIN / "dvc", "plots", "show", "-o", tmp_path / "shown"], plot_project)
    page = tmp_path / "shown" / "index.html"
    kinds = ("roc_classes", "confusion", "training")
    for width in (1400, 1920):
        seen = render_page(page, width=width, screenshot=os.environ.get("INSTRCLF_SCREENSHOTS") and
                           Path(os.environ["INSTRCLF_SCREENSHOTS"]) / f"plots-{width}.png")
        plots_ = seen["plots"]
        assert seen["page"] <= width, f"the page is {seen['page']} px wide in a {width}-px window"
        for p in plots_:
            assert p["left"] >= 0 and p["right"] <= width + 0.5, f"{p['id']} is cut: {p['left']:.0f}-{p['right']:.0f} of {width} px"
            assert p["loaded"] and p["errors"] == 0, p
        vega = {p["id"]: p for p in plots_ if p["kind"] == "vega"}
        images = [p for p in plots_ if p["kind"] == "image"]
        for name in PAGE_MODELS:
            for kind in kinds:
                (shown,) = [p for i, p in vega.items() if kind in i and name in i]
                assert shown["titles"] and shown["titles"][0].startswith(f"{name}: "), (kind, shown["titles"])
            assert [p for p in images if p["caption"].endswith(f"images/{name}.png")]
        assert all(p["titles"] and "/" not in p["titles"][0] for p in vega.values())  # a title, never a bare path
        expected = 3 * len(PAGE_MODELS) + 1 + 4 + 1 + 3 + 1  # per model x3, micro ROC, 4 breakdowns + pairs, held-out 3 + pairs
        assert len(vega) == expected, sorted(vega)
        assert len({p["titles"][0] for p in vega.values()}) == expected  # no two plots share a title
        wide = [p for p in images if p["natural"] > width]
        assert not wide or all(p["width"] <= width for p in wide)  # scaled by the page, not cut


def test_failure_summary_names_the_weakest_groups_with_their_folds(tmp_path):
    strong, weak = detailed(n_files=600, skill=3.0, seed=1), detailed(n_files=600, skill=3.0, seed=2)
    weak.loc[weak["dynamics"] == "pp", "predicted"] = "Fl"  # every soft note taken for a flute
    out = tmp_path / "breakdown"
    for by in plots.BREAKDOWNS:
        write_json(out / f"test_{by}.json", plots.breakdown_table({"good": strong, "soft": weak}, by=by))
    write_json(out / "test_pairs.json", plots.confused_pairs(weak, series="soft"))
    text = plots.failure_summary(out, lowest=1, min_notes=20)
    good, soft = text.split("\n\n")
    pp = weak[weak["dynamics"] == "pp"]
    by_fold = pp.groupby("fold").apply(lambda t: (t["label"] == t["predicted"]).mean(), include_groups=False)
    assert soft.startswith(f"soft, test folds: {(weak['label'] == weak['predicted']).mean():.3f} of 600 notes.")
    assert f"Lowest dynamics: pp {by_fold.mean():.3f} (folds {by_fold.min():.2f}-{by_fold.max():.2f}, {len(pp)} notes)" in soft
    top = plots.confused_pairs(weak, series="soft")[0]
    assert f"Most confused: {top['pair']} {top['count']} of {top['of']}" in soft and top["predicted"] == "Fl"
    assert good.startswith("good, test folds:") and "Most confused" not in good


def test_failure_summary_names_a_missing_folder(tmp_path):
    with pytest.raises(DataError, match="nowhere: no breakdown folder"):
        plots.failure_summary(tmp_path / "nowhere")


def test_plot_stage_writes_every_breakdown_and_empty_held_out_plots_without_one(plot_project, tmp_path):
    """The breakdown files dvc.yaml names all exist (DVC warns of a missing one); with no held-out library they are empty."""
    named = [next(iter(e)) for e in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"] if isinstance(e, dict)]
    breakdowns = [n for n in named if "/breakdown/" in n]
    assert len(breakdowns) == 4 + 1 + 3 + 1
    two = {name: PAGE_MODELS[name] for name in ("conv1d", "baseline")}
    for held_out, project, models in [(True, plot_project, PAGE_MODELS),
                                      (False, make_plot_project(tmp_path / "project", held_out=False, models=two), two)]:
        for name in breakdowns:
            rows = json.loads((project / name).read_text())
            assert bool(rows) == (held_out or "/unseen_" not in name), name
        names = sorted(p.name for p in (project / "plots" / "data" / "training").iterdir())
        assert names == sorted(f"{m}.json" for m in models)
        rows = json.loads((project / "plots" / "data" / "breakdown" / "test_octave.json").read_text())
        assert {r["series"] for r in rows} == set(models) and {r["fold"] for r in rows} == {0, 1}


@pytest.mark.parametrize("max_points", [2, 10])
def test_class_roc_rows_keep_the_asked_budget_per_class(max_points):
    preds = predictions(n_files=200)
    rows = plots.class_roc_rows(preds, labels=LABELS, max_points=max_points)
    for label in LABELS:
        fpr, tpr = curve(rows, label)
        assert 2 <= len(fpr) <= max_points and (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_failure_summary_names_no_best_group_when_every_group_is_a_lowest(tmp_path):
    """Two dynamics with enough notes and lowest=2: both are listed as the lowest; no 'best' repeats one of them."""
    out = tmp_path / "breakdown"
    write_json(out / "test_dynamics.json", [
        {"series": "m", "group": "pp", "order": 0, "fold": 0, "accuracy": 0.5, "notes": 30},
        {"series": "m", "group": "ff", "order": 1, "fold": 0, "accuracy": 0.9, "notes": 30},
    ])
    text = plots.failure_summary(out, lowest=2, min_notes=20)
    assert text == ("m, test folds: 0.700 of 60 notes. Lowest dynamics: pp 0.500 (folds 0.50-0.50, 30 notes); "
                    "ff 0.900 (folds 0.90-0.90, 30 notes).")


# Hostile mutants, round 7 (benchmarks/hostile_mutants/round7): cases beside the tested ones.


def test_failure_summary_keeps_a_group_of_exactly_min_notes(tmp_path):
    """min_notes is the least a group needs to be named: a group of exactly that many counts."""
    out = tmp_path / "breakdown"
    write_json(out / "test_dynamics.json", [
        {"series": "m", "group": "pp", "order": 0, "fold": 0, "accuracy": 0.5, "notes": 20},
        {"series": "m", "group": "ff", "order": 1, "fold": 0, "accuracy": 0.9, "notes": 19},
        {"series": "m", "group": "mf", "order": 2, "fold": 0, "accuracy": 0.8, "notes": 21},
    ])
    text = plots.failure_summary(out, lowest=1, min_notes=20)
    assert "Lowest dynamics: pp 0.500 (folds 0.50-0.50, 20 notes); best mf 0.800." in text and "ff" not in text


def test_the_test_folds_curves_leave_the_held_out_library_out(plot_project):
    """The held-out library's notes have breakdowns of their own: the ROC and confusion of the test
    folds hold the test folds' notes, every one of them and nothing else."""
    for name in PAGE_MODELS:
        table, _ = layout.read_predictions(plot_project / "data" / "predictions" / f"{name}.csv")
        test = table[table["set"] == "test"]
        assert (table["set"] == "unseen").sum() > 0
        rows = json.loads((plot_project / "plots" / "data" / "confusion" / f"{name}.json").read_text())
        assert sorted((r["actual"], r["predicted"]) for r in rows) == sorted(zip(test["label"], test["predicted"]))


# Hostile mutants, round 8 (benchmarks/hostile_mutants/round8): cases beside the tested ones.


def test_failure_summary_headline_is_the_share_of_notes_right(tmp_path):
    """Groups of 100 notes (90 right) and 20 notes (10 right): 100 of 120 notes right, 0.833, not
    the mean of the groups' accuracies (0.700)."""
    out = tmp_path / "breakdown"
    write_json(out / "test_dynamics.json", [
        {"series": "m", "group": "ff", "order": 0, "fold": 0, "accuracy": 0.9, "notes": 100},
        {"series": "m", "group": "pp", "order": 1, "fold": 0, "accuracy": 0.5, "notes": 20},
    ])
    assert plots.failure_summary(out, lowest=1, min_notes=20).startswith("m, test folds: 0.833 of 120 notes.")
