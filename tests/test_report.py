"""The error report (instrclf.report): the wrong notes, their media, the page, and the page in a real browser."""

import base64
import html as html_module
import io
import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image
from synthetic import CHROMIUM_FLAGS, chromium, make_features_dir

from instrclf import data, layout, report
from instrclf.errors import DataError

LABELS = ["Fl", "Tbn", "Vn"]


def predictions_of(index: pd.DataFrame, *, seed=0) -> pd.DataFrame:
    """One row per note of ``index``: library B is the held-out one; about a third of the notes wrong."""
    rng = np.random.default_rng(seed)
    notes = index.drop_duplicates("Path").sort_values("Path").reset_index(drop=True)
    probs = rng.dirichlet(np.ones(len(LABELS)), size=len(notes))
    truth = notes["label"].map(LABELS.index).to_numpy()
    right = rng.random(len(notes)) < 0.65
    probs[right, truth[right]] += 2.0  # the true class wins on these
    probs /= probs.sum(axis=1, keepdims=True)
    table = pd.DataFrame({
        "Path": notes["Path"], "library": notes["library"], "fold": notes["fold"],
        "set": np.where(notes["library"] == "B", "unseen", "test"), "label": notes["label"],
        "predicted": [LABELS[i] for i in probs.argmax(axis=1)],
        "n_windows": notes["Path"].map(index["Path"].value_counts()).to_numpy(),
    })
    for j, label in enumerate(LABELS):
        table[f"p_{label}"] = probs[:, j]
    return table


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Clean windows, their features, predictions and a metadata CSV with pitch and dynamics."""
    root = tmp_path_factory.mktemp("report")
    features = make_features_dir(root)
    index = layout.read_index(features)
    table = predictions_of(index)
    layout.write_predictions(root / "predictions.csv", table)
    notes = table[["Path", "label"]].rename(columns={"label": "Instrument (abbr.)"})
    notes["Pitch"] = ["C4", "A#3", "G5"] * (len(notes) // 3) + ["C4"] * (len(notes) % 3)
    notes["Dynamics"] = "mf"
    notes.to_csv(root / "metadata.csv", index=False)
    return root


def read_packs(folder) -> dict:
    """Every note's ``(ogg, png)`` bytes from the report's ``media/<pack>.js`` scripts, decoded as the page does."""
    notes = {}
    for script in sorted((folder / "media").glob("*.js")):
        match = re.fullmatch(r"instrclfMedia\((\d+),(\{.*\})\);\n", script.read_text(encoding="ascii"), re.S)
        assert match and script.name == f"{int(match.group(1)):04d}.js", script
        for name, (ogg, png) in json.loads(match.group(2)).items():
            notes[name] = (base64.b64decode(ogg, validate=True), base64.b64decode(png, validate=True), int(match.group(1)))
    return notes


def page_rows(folder) -> list:
    return json.loads(re.search(r'id="data">(.*?)</script>', (folder / "index.html").read_text()).group(1))["rows"]


def run_report(project, out, **kwargs):
    return report.run(project / "predictions.csv", clean_dir=project / "clean", features_dir=project / "features",
                      metadata_csv=project / "metadata.csv", out_dir=out, model="conv2d", progress=False, **kwargs)


# --------------------------------------------------------------------------- the wrong notes


def test_wrong_notes_are_exactly_the_misclassified_ones_with_their_top_three(project):
    table, labels = layout.read_predictions(project / "predictions.csv")
    details = layout.read_note_details(project / "metadata.csv")
    wrong = report.wrong_notes(table, labels, details)
    expected = table[table["label"] != table["predicted"]]
    assert sorted(wrong["Path"]) == sorted(expected["Path"]) and len(wrong) > 5
    for row in wrong.itertuples():
        probs = table.loc[table["Path"] == row.Path, [f"p_{x}" for x in labels]].iloc[0].to_numpy()
        assert [t[0] for t in row.top3] == [labels[j] for j in np.argsort(-probs)[:3]]
        assert row.top3[0][0] == row.predicted and row.confidence == pytest.approx(probs.max(), abs=1e-4)
        assert row.p_true == pytest.approx(probs[labels.index(row.label)], abs=1e-4) and row.p_true < row.confidence
        assert row.pitch in ("C4", "A#3", "G5") and row.dynamics == "mf"
    assert list(wrong["set"]) == sorted(wrong["set"])  # test notes, then the held-out library's


# --------------------------------------------------------------------------- media


def test_ogg_is_the_same_bytes_every_time_and_decodes_to_the_note():
    t = np.arange(16000 * 2) / 16000
    note = (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32")
    first, second = report.ogg_bytes(note, 16000), report.ogg_bytes(note, 16000)
    assert first == second  # libsndfile's random serial number would differ
    back, rate = sf.read(io.BytesIO(first), dtype="float32")
    assert rate == 16000 and abs(len(back) - len(note)) < 1024
    spectrum = np.abs(np.fft.rfft(back[4000:20000]))  # one second: 1-Hz bins
    assert abs(int(np.argmax(spectrum)) - 440) < 3  # the same pitch came back
    # every page's checksum holds (a reader that checks them, like a browser, accepts the file)
    start = 0
    while start < len(first):
        segments = first[start + 26]
        end = start + 27 + segments + sum(first[start + 27 : start + 27 + segments])
        page = bytearray(first[start:end])
        stored = int.from_bytes(page[22:26], "little")
        page[22:26] = b"\0\0\0\0"
        assert report._ogg_crc(bytes(page)) == stored and int.from_bytes(page[14:18], "little") == report.OGG_SERIAL
        start = end


def test_spectrogram_png_is_small_oriented_and_scaled_to_its_range():
    mel = np.full((100, 128), -100.0, dtype="float32")
    mel[:, :8] = 0.0  # loud low bands
    image = Image.open(io.BytesIO(report.png_bytes(mel)))
    assert image.size == (50, 64) and image.mode == "P"  # frames and bands in pairs
    pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels[-4:].mean() > 4 * pixels[:-4].mean()  # the loud low bands at the bottom
    assert report.png_bytes(mel) == report.png_bytes(mel)


# --------------------------------------------------------------------------- the folder


def test_run_writes_a_page_and_each_wrong_notes_media_the_same_whatever_the_workers(project, tmp_path):
    figures = run_report(project, tmp_path / "one", jobs=1)
    run_report(project, tmp_path / "two", jobs=2)
    table, _ = layout.read_predictions(project / "predictions.csv")
    wrong = table[table["label"] != table["predicted"]]
    assert figures["wrong_test"] == (wrong["set"] == "test").sum() and figures["wrong_unseen"] == (wrong["set"] == "unseen").sum()
    files = sorted(p.relative_to(tmp_path / "one").as_posix() for p in (tmp_path / "one").rglob("*") if p.is_file())
    packs = -(-(wrong["set"] == "test").sum() // report.PACK_NOTES) - (-(wrong["set"] == "unseen").sum() // report.PACK_NOTES)
    assert files == ["index.html"] + [f"media/{n:04d}.js" for n in range(packs)] and packs >= 2
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
    # every wrong note's media in the pack its row names; its audio is its clean windows joined, in order
    rows, notes = page_rows(tmp_path / "one"), read_packs(tmp_path / "one")
    assert sorted(r["Path"] for r in rows) == sorted(wrong["Path"]) and len(notes) == len(rows)
    assert all(notes[r["media"]][2] == r["pack"] for r in rows)
    index, spectrograms = layout.read_features(project / "features", settings=None)
    for row in rows:
        windows = index[index["Path"] == row["Path"]].sort_values("window_index")
        joined = data.load_windows(project / "clean", windows, n_samples=4000).reshape(-1)
        audio, _ = sf.read(io.BytesIO(notes[row["media"]][0]), dtype="float32")
        assert abs(len(audio) - len(joined)) < 1024 and row["n_windows"] == len(windows)
        n = min(len(audio), len(joined))
        assert np.corrcoef(audio[:n], joined[:n])[0, 1] > 0.9
        frames, mels = spectrograms.shape[1] * len(windows), spectrograms.shape[2]
        assert Image.open(io.BytesIO(notes[row["media"]][1])).size == (frames // 2, mels // 2)  # its spectrograms joined


def test_packs_hold_the_pages_first_order_a_few_notes_each_and_never_two_sets(project, tmp_path):
    """Rows in a set's most-confident-first order fill packs of PACK_NOTES in turn: the first page needs the first pack."""
    run_report(project, tmp_path / "out", jobs=1)
    rows = page_rows(tmp_path / "out")
    for name in ("test", "unseen"):
        in_set = [r for r in rows if r["set"] == name]
        assert [r["confidence"] for r in in_set] == sorted((r["confidence"] for r in in_set), reverse=True)
        packs = [r["pack"] for r in in_set]
        assert packs == sorted(packs) and len(set(packs)) == -(-len(in_set) // report.PACK_NOTES)
        assert all(packs.count(p) == report.PACK_NOTES for p in set(packs) - {packs[-1]})
    assert not {r["pack"] for r in rows if r["set"] == "test"} & {r["pack"] for r in rows if r["set"] == "unseen"}


def test_a_note_without_windows_is_named(project, tmp_path):
    table, _ = layout.read_predictions(project / "predictions.csv")
    wrong = table[table["label"] != table["predicted"]].index[0]
    table.loc[wrong, "Path"] = "Family/Fl/ordinario/gone.wav"
    layout.write_predictions(tmp_path / "p.csv", table)
    with pytest.raises(DataError, match=r"features: no windows of 1 predicted note\(s\), e.g. Family/Fl/ordinario/gone.wav"):
        report.run(tmp_path / "p.csv", clean_dir=project / "clean", features_dir=project / "features",
                   metadata_csv=project / "metadata.csv", out_dir=tmp_path / "out", model="m", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_name_that_would_close_the_script_cannot(project):
    page = report.page_html([{"Path": "x</script><b>oops</b>"}], model="m</title>", summary={})
    assert page.count("</script>") == 2 and "m&lt;/title&gt;" in page  # the data and the code, nothing closed early
    data = json.loads(re.search(r'id="data">(.*?)</script>', page, re.S).group(1))
    assert data["rows"][0]["Path"] == "x</script><b>oops</b>"  # and the name comes back whole (drawn as text)


# --------------------------------------------------------------------------- in a real browser


def open_page(page, *, hash_="", screenshot=None) -> dict:
    """What headless Chromium shows at ``page#hash_``: the table's rows, players and images, the status line."""
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    base = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={page.parent / 'profile'}", "--window-size=1400,1000"]
    proc = subprocess.run([*base, "--dump-dom", probe.as_uri() + hash_], capture_output=True, text=True, timeout=180)
    match = re.search(r'data-seen="([^"]*)"', proc.stdout)
    assert match, f"the page drew nothing (rc {proc.returncode}): {proc.stderr[-2000:]}"
    if screenshot:
        subprocess.run([*base, f"--screenshot={screenshot}", page.as_uri() + hash_], capture_output=True, timeout=180)
    return json.loads(html_module.unescape(match.group(1)))


#: Injected into a copy of the page: once images have loaded, what a reader sees, into the DOM.
PROBE = """<script>
setTimeout(function () {
  var rows = Array.from(document.querySelectorAll("#rows tr")).map(function (tr) {
    var audio = tr.querySelector("audio"), img = tr.querySelector("img");
    return {path: tr.dataset.path, cells: Array.from(tr.children).map(function (td) { return td.textContent; }),
            audio: audio ? audio.getAttribute("src") : null, controls: !!(audio && audio.controls),
            image: img ? img.getAttribute("src") : null, loaded: !!(img && img.complete && img.naturalWidth > 0)};
  });
  document.body.setAttribute("data-seen", JSON.stringify({rows: rows, about: document.getElementById("about").textContent,
    where: document.getElementById("where").textContent, hash: location.hash, width: document.documentElement.scrollWidth}));
}, 3000);
</script>"""


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (make test installs it: Debian package chromium)")
def test_the_page_lists_filters_sorts_and_plays_in_chromium(project, tmp_path):
    out = tmp_path / "conv2d"
    run_report(project, out)
    table, _ = layout.read_predictions(project / "predictions.csv")
    wrong = table[table["label"] != table["predicted"]]
    test_wrong = wrong[wrong["set"] == "test"]

    seen = open_page(out / "index.html", screenshot=tmp_path / "page.png")
    assert sorted(r["path"] for r in seen["rows"]) == sorted(test_wrong["Path"])  # the test tab first, every wrong note
    assert seen["about"] == f"conv2d, test folds: {len(test_wrong)} of {(table['set'] == 'test').sum()} notes wrong."
    notes = {r["Path"]: read_packs(out)[r["media"]] for r in page_rows(out)}
    for row in seen["rows"]:  # the player and the image hold the note's own bytes, from its pack
        assert row["controls"] and row["audio"] == "data:audio/ogg;base64," + base64.b64encode(notes[row["path"]][0]).decode()
        assert row["loaded"] and row["image"] == "data:image/png;base64," + base64.b64encode(notes[row["path"]][1]).decode()
    confidences = [float(re.search(r"\(([0-9.]+)\)", r["cells"][2]).group(1)) for r in seen["rows"]]
    assert confidences == sorted(confidences, reverse=True)  # most confident mistakes first
    assert seen["width"] <= 1400 and (tmp_path / "page.png").stat().st_size > 10_000

    flute = open_page(out / "index.html", hash_="#set=unseen&instrument=Fl&sort=confidence-asc")
    expected = wrong[(wrong["set"] == "unseen") & (wrong["label"] == "Fl")]
    assert sorted(r["path"] for r in flute["rows"]) == sorted(expected["Path"]) and len(expected) > 0
    assert all(r["cells"][1].startswith("Fl ") for r in flute["rows"])
    low = [float(re.search(r"\(([0-9.]+)\)", r["cells"][2]).group(1)) for r in flute["rows"]]
    assert low == sorted(low)
    assert "held-out library" in flute["about"] and f"{len(expected)} shown by the filter" in flute["about"]


def test_the_page_is_paged_fifty_rows_at_a_time(tmp_path):
    rows = [{"Path": f"n{i:03d}.wav", "library": "A", "fold": 0, "set": "test", "label": "Fl", "predicted": "Vn",
             "n_windows": 1, "confidence": round(1 - i / 200, 4), "p_true": 0.0, "top3": [["Vn", 0.9]], "pitch": "",
             "dynamics": "", "media": "none", "pack": 0} for i in range(120)]
    page = tmp_path / "index.html"
    page.write_text(report.page_html(rows, model="m", summary={"test": {"notes": 200, "wrong": 120, "label": "test folds"}}))
    if chromium() is None:
        pytest.skip("chromium is not installed (make test installs it: Debian package chromium)")
    third = open_page(page, hash_="#page=3")
    assert third["where"] == "page 3 of 3" and [r["path"] for r in third["rows"]] == [f"n{i:03d}.wav" for i in range(100, 120)]


def test_a_wrong_note_missing_from_the_metadata_shows_empty_pitch_and_dynamics(project):
    """Details come from the metadata; a note it lacks still gets its row, with empty (not NaN) fields."""
    table, labels = layout.read_predictions(project / "predictions.csv")
    details = layout.read_note_details(project / "metadata.csv")
    wrong_paths = table.loc[table["label"] != table["predicted"], "Path"]
    missing = wrong_paths.iloc[0]
    wrong = report.wrong_notes(table, labels, details[details["Path"] != missing])
    row = wrong[wrong["Path"] == missing].iloc[0]
    assert (row["pitch"], row["dynamics"]) == ("", "")
    assert wrong["pitch"].map(type).eq(str).all() and wrong["dynamics"].map(type).eq(str).all()


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_the_figures_count_the_media_files_written(project, tmp_path):
    """media_files is what media/ holds: one pack script per PACK_NOTES wrong notes of a set; megabytes the audio and images."""
    figures = run_report(project, tmp_path / "out", jobs=1)
    written = sorted(p.name for p in (tmp_path / "out" / "media").iterdir())
    assert figures["media_files"] == len(written) == sum(-(-figures[f"wrong_{s}"] // report.PACK_NOTES) for s in ("test", "unseen"))
    raw = sum(len(ogg) + len(png) for ogg, png, _ in read_packs(tmp_path / "out").values())
    assert figures["megabytes"] == round(raw / 2**20, 1) and raw > 0
