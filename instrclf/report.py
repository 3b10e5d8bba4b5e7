"""The error report: a page per model of every note it got wrong, to read, sort, filter and listen to.

One folder per model (the ``report@<model>`` stage): ``index.html``, self-contained (its
script and style inline, no network), and ``media/`` beside it with each wrong note's audio
(its clean windows joined, as the model heard them, Ogg Vorbis) and its log-mel spectrogram
(the features stage's, as the model saw it, PNG), packed :data:`PACK_NOTES` notes to a script
(``media/<pack>.js``, base64) that the page loads when a row of it is shown: a few dozen files
per report instead of two per wrong note, which DVC would otherwise check one by one on every
``dvc status``. Packs follow the page's first order (set, most confident first), so the first
page needs one pack. The page lists the notes of the test folds
and, on a second tab, those of the held-out library: true and predicted instrument, the top
three probabilities, pitch, dynamics, library, fold; sortable by confidence, filterable by
instrument, 50 rows a page, players and images loaded only when shown. The page's state is
in its address (``#set=unseen&instrument=Fl&sort=confidence&page=2``), so a view can be
shared as a link.

Every file is the same bytes for the same predictions (Ogg's random stream serial number is
fixed, see :func:`ogg_bytes`), so the stage's output is reproducible like every other.
"""

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from . import layout
from .errors import DataError
from .io import atomic_dir, atomic_file
from .parallel import process_imap

#: Rows per page of the table.
PAGE_ROWS = 50

#: Wrong notes per media pack (``media/<pack>.js``): half a page of the table.
PACK_NOTES = 25

#: Shown dynamic range of a spectrogram image, below its loudest cell (dB).
IMAGE_RANGE_DB = 80.0

#: Ogg stream serial number written into every page (libsndfile draws a random one).
OGG_SERIAL = 0x1C1F

_NOTE_SETS = {"test": "test folds", "unseen": "held-out library"}


# --------------------------------------------------------------------------- which notes


def wrong_notes(predictions: pd.DataFrame, labels: list, details: pd.DataFrame) -> pd.DataFrame:
    """The misclassified notes with what the page shows, sorted by set then ``Path``.

    Parameters
    ----------
    predictions : pandas.DataFrame
        :func:`instrclf.layout.read_predictions`'s table.
    labels : list of str
        Its class names.
    details : pandas.DataFrame
        :func:`instrclf.layout.read_note_details`'s table (pitch, dynamics); a note missing
        there shows empty fields.

    Returns
    -------
    pandas.DataFrame
        ``Path, library, fold, set, label, predicted, n_windows, confidence`` (the predicted
        label's probability), ``p_true`` (the true label's), ``top3`` (list of
        ``[label, probability]``), ``pitch``, ``dynamics``.
    """
    wrong = predictions[predictions["label"] != predictions["predicted"]].copy()
    probs = wrong[layout.probability_columns(labels)].to_numpy(dtype=float)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :3]
    wrong["top3"] = [[[labels[j], round(float(p[j]), 4)] for j in row] for p, row in zip(probs, order, strict=True)]
    column = {label: i for i, label in enumerate(labels)}
    rows = np.arange(len(wrong))
    wrong["confidence"] = probs[rows, [column[x] for x in wrong["predicted"]]].round(4)
    wrong["p_true"] = probs[rows, [column[x] for x in wrong["label"]]].round(4)
    wrong = wrong.merge(details[["Path", "pitch", "dynamics"]], on="Path", how="left").fillna({"pitch": "", "dynamics": ""})
    keep = ["Path", "library", "fold", "set", "label", "predicted", "n_windows", "confidence", "p_true", "top3", "pitch", "dynamics"]
    return wrong[keep].sort_values(["set", "Path"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- media


def _crc_table() -> list:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_CRC = _crc_table()


def _ogg_crc(page: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, not reflected, initial value and final XOR 0."""
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC[((crc >> 24) ^ byte) & 0xFF]
    return crc


def ogg_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono ``audio`` as Ogg Vorbis, the same bytes every time: each page's serial number set to
    :data:`OGG_SERIAL` and its checksum recomputed (libsndfile draws the serial at random)."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format="OGG", subtype="VORBIS")
    data = bytearray(buffer.getvalue())
    start = 0
    while start < len(data):
        if data[start : start + 4] != b"OggS":
            raise DataError(f"libsndfile wrote an Ogg stream with no page at byte {start}")
        segments = data[start + 26]
        end = start + 27 + segments + sum(data[start + 27 : start + 27 + segments])
        data[start + 14 : start + 18] = OGG_SERIAL.to_bytes(4, "little")
        data[start + 22 : start + 26] = b"\0\0\0\0"
        data[start + 22 : start + 26] = _ogg_crc(bytes(data[start:end])).to_bytes(4, "little")
        start = end
    return bytes(data)


def png_bytes(spectrogram: np.ndarray) -> bytes:
    """A log-mel spectrogram ``(frames, mels)`` in dB as a small PNG: cells averaged in 2 x 2 blocks
    (20 ms by two bands), :data:`IMAGE_RANGE_DB` below its loudest cell, low bands at the bottom,
    one byte a pixel (a 256-colour palette of matplotlib's magma)."""
    from matplotlib import colormaps
    from PIL import Image

    frames, mels = spectrogram.shape
    blocks = spectrogram[: frames - frames % 2, : mels - mels % 2].reshape(frames // 2, 2, mels // 2, 2).mean(axis=(1, 3))
    top = float(blocks.max()) if blocks.size else 0.0
    shade = np.clip((blocks.T[::-1] - (top - IMAGE_RANGE_DB)) / IMAGE_RANGE_DB, 0.0, 1.0)
    image = Image.fromarray(np.round(shade * 255).astype(np.uint8), mode="P")
    image.putpalette((colormaps["magma"](np.arange(256))[:, :3] * 255).round().astype(np.uint8).tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def note_media(rows: pd.DataFrame, *, windows, spectrograms, sample_rate: int) -> tuple:
    """``(ogg, png)`` bytes of one note: the clean windows of its index ``rows`` (in order), read
    through ``windows`` (:class:`instrclf.layout.Windows`), and their rows of ``spectrograms``."""
    y = windows.read(rows)[..., 0].reshape(-1)
    mel = np.concatenate([np.asarray(spectrograms[i])[..., 0] for i in rows.index], axis=0)
    return ogg_bytes(y, sample_rate), png_bytes(mel)


_WORKER: dict = {}


def _open(clean_dir, features_dir) -> None:
    """Worker start: the clean windows of the features' index and the memory-mapped spectrograms."""
    index, spectrograms = layout.read_features(features_dir, settings=None)
    clean = layout.read_json(Path(features_dir) / layout.FEATURES_CARD)["settings"]["clean"]
    width = round(clean["sample_rate"] * clean["delta_time"])
    _WORKER.update(windows=layout.Windows(clean_dir, index, n_samples=width), spectrograms=spectrograms,
                   sample_rate=clean["sample_rate"], index=index)


def _encode_media(rows) -> tuple:
    """One note's ``(ogg, png)`` bytes from the index ``rows`` of its windows (in a worker)."""
    return note_media(_WORKER["index"].loc[rows], windows=_WORKER["windows"], spectrograms=_WORKER["spectrograms"],
                      sample_rate=_WORKER["sample_rate"])


def pack_path(media_dir, pack: int) -> Path:
    """``media/<pack>.js``, four digits."""
    return Path(media_dir) / f"{pack:04d}.js"


def pack_script(pack: int, notes: dict) -> str:
    """The script of one pack: ``instrclfMedia(<pack>,{"<media>":["<ogg base64>","<png base64>"],...});``."""
    encoded = {name: [base64.b64encode(ogg).decode("ascii"), base64.b64encode(png).decode("ascii")]
               for name, (ogg, png) in notes.items()}
    return f"instrclfMedia({pack},{json.dumps(encoded, separators=(',', ':'))});\n"


# --------------------------------------------------------------------------- the page


def page_html(rows: list, *, model: str, summary: dict) -> str:
    """The page: a table of ``rows`` (JSON-able dicts) drawn by its inline script, 50 a page."""
    data = json.dumps({"model": model, "rows": rows, "summary": summary, "pageRows": PAGE_ROWS}, separators=(",", ":"))
    data = data.replace("</", "<\\/")  # a note's name cannot close the script element
    title = html.escape(f"{model}: the notes it gets wrong")
    return _PAGE.replace("{{TITLE}}", title).replace("{{DATA}}", data)


def run(predictions_csv, *, clean_dir, features_dir, metadata_csv, out_dir, model: str, jobs=None, progress=True) -> dict:
    """Write the report folder ``out_dir`` (replaced on success) of one model's predictions.

    The media are encoded in ``jobs`` worker processes (``None``: every core) and written a
    pack at a time as they come back; the files are the same whatever the number.

    Returns
    -------
    dict
        Flat figures: wrong notes per set, media files (packs) and megabytes of audio and images.
    """
    predictions, labels = layout.read_predictions(predictions_csv)
    details = layout.read_note_details(metadata_csv)
    index, _ = layout.read_features(features_dir, settings=None)  # shown, not computed on
    wrong = wrong_notes(predictions, labels, details)
    by_note = {path: group.sort_values("window_index", kind="stable") for path, group in index.groupby("Path", sort=False)}
    missing = sorted(set(wrong["Path"]) - set(by_note))
    if missing:
        raise DataError(f"{features_dir}: no windows of {len(missing)} predicted note(s), e.g. {missing[0]}: rerun the pipeline")
    # the page's first order: a set's most confident mistakes first; packs never span two sets
    wrong = wrong.sort_values(["set", "confidence", "Path"], ascending=[True, False, True], kind="stable")
    rows, pack, filled = [], -1, PACK_NOTES
    for number, note in enumerate(wrong.itertuples(index=False)):
        if filled == PACK_NOTES or note.set != rows[-1]["set"]:
            pack, filled = pack + 1, 0
        rows.append(note._asdict() | {"media": f"{number:05d}", "pack": pack})
        filled += 1
    counts = predictions.groupby("set").size().to_dict()
    summary = {
        name: {"notes": int(counts.get(name, 0)), "wrong": int((wrong["set"] == name).sum()), "label": text}
        for name, text in _NOTE_SETS.items()
    }
    with atomic_dir(out_dir) as tmp:
        media = Path(tmp) / "media"
        media.mkdir(parents=True)
        encoded = process_imap(_encode_media, [list(by_note[row["Path"]].index) for row in rows], jobs=jobs,
                               initializer=_open, initargs=(str(clean_dir), str(features_dir)),
                               desc=f"report {model}", unit="note", progress=progress)
        written, notes = 0, {}
        for i, (row, (ogg, png)) in enumerate(zip(rows, encoded, strict=True)):
            notes[row["media"]] = (ogg, png)
            written += len(ogg) + len(png)
            if i + 1 == len(rows) or rows[i + 1]["pack"] != row["pack"]:
                pack_path(media, row["pack"]).write_text(pack_script(row["pack"], notes), encoding="ascii")
                notes = {}
        with atomic_file(Path(tmp) / "index.html") as f:
            f.write(page_html(rows, model=model, summary=summary))
    figures = {f"wrong_{name}": summary[name]["wrong"] for name in _NOTE_SETS}
    packs = rows[-1]["pack"] + 1 if rows else 0
    return figures | {"media_files": packs, "megabytes": round(written / 2**20, 1)}


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{TITLE}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
.bar { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; margin: 10px 0; }
.tabs button { padding: 4px 12px; border: 1px solid #888; background: #f4f4f4; cursor: pointer; }
.tabs button[aria-pressed="true"] { background: #234; color: #fff; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: middle; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td img { height: 64px; image-rendering: pixelated; display: block; }
audio { width: 220px; height: 32px; }
.top3 span { display: block; white-space: nowrap; }
.path { font-size: 12px; color: #555; max-width: 280px; overflow-wrap: anywhere; }
#empty { color: #555; }
</style></head>
<body>
<h1>{{TITLE}}</h1>
<p id="about"></p>
<div class="bar">
  <span class="tabs" id="tabs"></span>
  <label>instrument <select id="instrument"><option value="">every one</option></select></label>
  <label>predicted as <select id="predicted"><option value="">anything</option></select></label>
  <label>sort <select id="sort">
    <option value="confidence">most confident first</option>
    <option value="confidence-asc">least confident first</option>
    <option value="path">by note</option>
  </select></label>
  <span id="pager"><button id="prev">&larr;</button> <span id="where"></span> <button id="next">&rarr;</button></span>
</div>
<table><thead><tr>
  <th>note</th><th>true</th><th>predicted</th><th>top 3</th><th>pitch</th><th>dynamics</th><th>library</th><th>fold</th>
  <th>listen</th><th>log-mel spectrogram</th>
</tr></thead><tbody id="rows"></tbody></table>
<p id="empty" hidden>No note here.</p>
<script type="application/json" id="data">{{DATA}}</script>
<script>
(function () {
  var DATA = JSON.parse(document.getElementById("data").textContent);
  var state = {set: "test", instrument: "", predicted: "", sort: "confidence", page: 1};
  var $ = function (id) { return document.getElementById(id); };
  function read() {
    var hash = new URLSearchParams(location.hash.slice(1));
    Object.keys(state).forEach(function (k) { if (hash.has(k)) state[k] = k === "page" ? Math.max(1, parseInt(hash.get(k), 10) || 1) : hash.get(k); });
    if (!DATA.summary[state.set]) state.set = "test";
  }
  function write() {
    var hash = new URLSearchParams();
    Object.keys(state).forEach(function (k) { hash.set(k, state[k]); });
    history.replaceState(null, "", "#" + hash.toString());
  }
  var packs = {}, waiting = {};
  window.instrclfMedia = function (n, notes) { packs[n] = notes; (waiting[n] || []).forEach(function (f) { f(notes); }); delete waiting[n]; };
  function media(n, then) {  // a pack's notes, its script loaded once (file:// allows scripts, not fetch)
    if (packs[n]) return then(packs[n]);
    if (!waiting[n]) {
      waiting[n] = [];
      var s = document.createElement("script"); s.src = "media/" + String(n).padStart(4, "0") + ".js"; document.head.appendChild(s);
    }
    waiting[n].push(then);
  }
  function cell(text, cls) { var td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }
  function chosen() {
    var rows = DATA.rows.filter(function (r) {
      return r.set === state.set && (!state.instrument || r.label === state.instrument) && (!state.predicted || r.predicted === state.predicted);
    });
    var by = {
      "confidence": function (a, b) { return b.confidence - a.confidence || (a.Path < b.Path ? -1 : 1); },
      "confidence-asc": function (a, b) { return a.confidence - b.confidence || (a.Path < b.Path ? -1 : 1); },
      "path": function (a, b) { return a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0; }
    }[state.sort] || null;
    return by ? rows.sort(by) : rows;
  }
  function options(select, values) {
    while (select.options.length > 1) select.remove(1);
    values.forEach(function (v) { var o = document.createElement("option"); o.value = o.textContent = v; select.appendChild(o); });
  }
  function draw() {
    var inSet = DATA.rows.filter(function (r) { return r.set === state.set; });
    var uniq = function (key) { return Array.from(new Set(inSet.map(function (r) { return r[key]; }))).sort(); };
    options($("instrument"), uniq("label"));
    options($("predicted"), uniq("predicted"));
    ["instrument", "predicted", "sort"].forEach(function (k) { $(k).value = state[k]; if ($(k).value !== state[k]) { state[k] = ""; } });
    var rows = chosen(), pages = Math.max(1, Math.ceil(rows.length / DATA.pageRows));
    state.page = Math.min(state.page, pages);
    var s = DATA.summary[state.set];
    $("about").textContent = DATA.model + ", " + s.label + ": " + s.wrong + " of " + s.notes + " notes wrong" +
      (state.instrument || state.predicted ? "; " + rows.length + " shown by the filter" : "") + ".";
    $("where").textContent = "page " + state.page + " of " + pages;
    $("prev").disabled = state.page <= 1; $("next").disabled = state.page >= pages;
    document.querySelectorAll("#tabs button").forEach(function (b) { b.setAttribute("aria-pressed", b.dataset.set === state.set); });
    var body = $("rows"); body.textContent = "";
    rows.slice((state.page - 1) * DATA.pageRows, state.page * DATA.pageRows).forEach(function (r) {
      var tr = document.createElement("tr"); tr.dataset.path = r.Path;
      tr.appendChild(cell(r.Path, "path"));
      tr.appendChild(cell(r.label + " (" + r.p_true.toFixed(3) + ")"));
      tr.appendChild(cell(r.predicted + " (" + r.confidence.toFixed(3) + ")"));
      var top = cell("", "top3");
      r.top3.forEach(function (t) { var span = document.createElement("span"); span.textContent = t[0] + " " + (100 * t[1]).toFixed(1) + "%"; top.appendChild(span); });
      tr.appendChild(top);
      tr.appendChild(cell(r.pitch)); tr.appendChild(cell(r.dynamics)); tr.appendChild(cell(r.library)); tr.appendChild(cell(String(r.fold), "num"));
      var listen = cell(""), audio = document.createElement("audio");
      audio.controls = true; audio.preload = "none"; listen.appendChild(audio); tr.appendChild(listen);
      var look = cell(""), img = document.createElement("img");
      img.alt = "log-mel spectrogram of " + r.Path; look.appendChild(img); tr.appendChild(look);
      media(r.pack, function (notes) {
        audio.src = "data:audio/ogg;base64," + notes[r.media][0]; img.src = "data:image/png;base64," + notes[r.media][1];
      });
      body.appendChild(tr);
    });
    $("empty").hidden = rows.length > 0;
    write();
  }
  Object.keys(DATA.summary).forEach(function (name) {
    var b = document.createElement("button"); b.dataset.set = name;
    b.textContent = DATA.summary[name].label + " (" + DATA.summary[name].wrong + ")";
    b.onclick = function () { state.set = name; state.page = 1; draw(); };
    $("tabs").appendChild(b);
  });
  ["instrument", "predicted", "sort"].forEach(function (k) { $(k).onchange = function () { state[k] = this.value; state.page = 1; draw(); }; });
  $("prev").onclick = function () { state.page -= 1; draw(); };
  $("next").onclick = function () { state.page += 1; draw(); };
  window.addEventListener("hashchange", function () { read(); draw(); });
  read(); draw();
  document.body.setAttribute("data-ready", "1");
})();
</script>
</body></html>
"""
