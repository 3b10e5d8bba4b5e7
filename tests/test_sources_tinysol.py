"""Tests of instrclf.sources (dispatcher, final layout check) and its ``tinysol`` source.

No network: a local HTTP server on 127.0.0.1 stands in for Zenodo and serves a tiny
TinySOL-format tarball (top folder ``TinySOL/``) and metadata CSV built here.
"""

import csv
import hashlib
import http.server
import io
import os
import re
import socket
import subprocess
import sys
import stat
import tarfile
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
import yaml
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from instrclf import layout, settings, sources
from instrclf.errors import DataError, DownloadError, ParameterError
from instrclf.sources import tinysol
from instrclf.layout import METADATA_COLUMNS

ROOT = Path(__file__).resolve().parents[1]

#: Path, Fold, Family, abbr., full name, pitch, dynamics of each tiny note.
ROWS = (
    ("Winds/Flute/ordinario/Fl-ord-C4-mf-N-T14d.wav", 0, "Winds", "Fl", "Flute", "C4", "mf"),
    ("Brass/Horn/ordinario/Hn-ord-A2-ff-N-N.wav", 1, "Brass", "Hn", "Horn", "A2", "ff"),
    ("Strings/Violin/ordinario/Vn-ord-G3-pp-4c-N.wav", 4, "Strings", "Vn", "Violin", "G3", "pp"),
)
SEED = 1


# --- tiny TinySOL-format data -------------------------------------------------------------


def wav_bytes(seed: int) -> bytes:
    """50 ms of seeded noise as a 16-bit WAV file."""
    buffer = io.BytesIO()
    y = 0.1 * np.random.default_rng(seed).standard_normal(400)
    sf.write(buffer, y, 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def metadata_bytes(rows=ROWS, *, columns=METADATA_COLUMNS) -> bytes:
    """A TinySOL_metadata.csv for ``rows`` with the given columns."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for path, fold, family, abbr, name, pitch, dyn in rows:
        writer.writerow({
            "Path": path, "Fold": fold, "Family": family, "Instrument (abbr.)": abbr,
            "Instrument (in full)": name, "Technique (abbr.)": "ord", "Technique (in full)": "ordinario",
            "Pitch": pitch, "Pitch ID": 60, "Dynamics": dyn, "Dynamics ID": 2, "Instance ID": 0,
            "String ID": "", "Resampled": "FALSE",
        })
    return buffer.getvalue().encode()


def tarball_bytes(*, top="TinySOL/", extra=()) -> bytes:
    """A gzipped tarball of the tiny notes under ``top``, plus ``extra`` (TarInfo, data) members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if top:
            folder = tarfile.TarInfo(top.rstrip("/"))
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(folder)
        for i, row in enumerate(ROWS):
            data = wav_bytes(i)
            info = tarfile.TarInfo(top + row[0])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name, *, kind=tarfile.REGTYPE, link="", data=b"x"):
    """One extra tarball member and its data."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --- a local stand-in for Zenodo ----------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; the next ``server.drops[name]`` GETs of a name stop half-way."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        name = self.path.rsplit("/", 1)[-1]
        self.server.hits[name] += 1
        body = self.server.files.get(name) if self.path == f"/records/1/files/{name}" else None
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.drops[name] > 0:
            self.server.drops[name] -= 1
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)

    def log_message(self, *args):
        """Keep the test output quiet."""


@pytest.fixture
def zenodo(monkeypatch):
    """A local HTTP server holding TinySOL's two files; ``.url`` is its base_url, ``.hits`` counts GETs."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.hits, server.drops = Counter(), Counter()
    server.url = f"http://127.0.0.1:{server.server_port}/records/1/files"
    publish(server)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def publish(server, *, archive=None, metadata=None) -> dict:
    """Serve the given (default: the good tiny) files; return their md5 mapping."""
    server.files = {
        tinysol.ARCHIVE: archive if archive is not None else tarball_bytes(),
        tinysol.METADATA: metadata if metadata is not None else metadata_bytes(),
    }
    server.md5 = {name: md5(data) for name, data in server.files.items()}
    return server.md5


def get(server, out, cache, *, base_url=None, md5s=None, **kwargs):
    """Run ``tinysol.download`` against ``server`` with fast test settings."""
    out.mkdir(parents=True, exist_ok=True)
    found = settings.TinysolSettings(base_url=base_url or server.url, md5=md5s or server.md5)
    options = {"cache_dir": cache, "retries": 1, "wait": 0, "progressbar": False, **kwargs}
    return tinysol.download(out, settings=found, **options)


def params_for(base_url, md5s, **data) -> dict:
    """The repository's params with ``data.source: tinysol`` at ``base_url``."""
    params = settings.load(ROOT / "params.yaml")
    params["data"]["tinysol"] = {"base_url": base_url, "md5": dict(md5s)}
    params["data"].update(source="tinysol", **data)
    return params


def fetch(params, out_dir) -> dict:
    """The download stage's work: typed settings from ``params``, then ``sources.fetch``."""
    return sources.fetch(settings.section(params, settings.DataSettings), seed=SEED, out_dir=out_dir)


def rows_in(raw) -> int:
    return len(layout.read_metadata(raw, check_audio=True))


def files_in(folder) -> list:
    return sorted(p.name for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).exists() else []


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- success and the cache ----------------------------------------------------------------


def test_download_lands_every_row_at_audio_path(zenodo, tmp_path, instrclf_cache):
    stats = get(zenodo, tmp_path / "raw", instrclf_cache)
    for i, row in enumerate(ROWS):
        assert (tmp_path / "raw" / "audio" / row[0]).read_bytes() == wav_bytes(i)
    assert (tmp_path / "raw" / tinysol.METADATA).read_bytes() == metadata_bytes()
    assert not (tmp_path / "raw" / "audio" / "TinySOL").exists()
    assert stats == {"files_downloaded": 2, "archive_mb": 0.0, "archive_files": len(ROWS)}
    assert rows_in(tmp_path / "raw") == len(ROWS)


@pytest.mark.parametrize("top", ["", "TinySOL-v1.0/", "a/b/"])
def test_download_finds_any_top_folder(zenodo, tmp_path, instrclf_cache, top):
    publish(zenodo, archive=tarball_bytes(top=top))
    get(zenodo, tmp_path / "raw", instrclf_cache)
    assert rows_in(tmp_path / "raw") == len(ROWS)

    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["TinySOL_metadata.csv", "audio"]  # nothing of the extraction left


def test_cache_is_reused_without_contacting_the_server(zenodo, tmp_path, instrclf_cache):
    get(zenodo, tmp_path / "one", instrclf_cache)
    assert sum(zenodo.hits.values()) == 2
    stats = get(zenodo, tmp_path / "two", instrclf_cache)
    assert sum(zenodo.hits.values()) == 2
    assert stats["files_downloaded"] == 0
    assert files_in(tmp_path / "one") == files_in(tmp_path / "two")


def test_corrupt_cache_entry_is_downloaded_again(zenodo, tmp_path, instrclf_cache):
    get(zenodo, tmp_path / "one", instrclf_cache)
    (instrclf_cache / tinysol.METADATA).write_bytes(b"Path\nnot/this.wav\n")
    assert get(zenodo, tmp_path / "two", instrclf_cache)["files_downloaded"] == 1
    assert zenodo.hits[tinysol.METADATA] == 2


def test_cache_defaults_to_env_var(zenodo, tmp_path, instrclf_cache):
    get(zenodo, tmp_path / "raw", None)
    assert files_in(instrclf_cache) == sorted(tinysol.FILES)


def file_mirror(folder, *, archive=None):
    """A folder holding the two files (``archive``: the archive's bytes, the tiny one by default); their md5s."""
    folder.mkdir()
    (folder / tinysol.ARCHIVE).write_bytes(tarball_bytes() if archive is None else archive)
    (folder / tinysol.METADATA).write_bytes(metadata_bytes())
    return {name: md5((folder / name).read_bytes()) for name in tinysol.FILES}


def test_file_url_works_like_http(tmp_path, instrclf_cache):
    mirror = tmp_path / "mirror"
    md5s = file_mirror(mirror)
    stats = fetch(params_for(mirror.as_uri(), md5s), tmp_path / "raw")
    assert stats["rows"] == len(ROWS) and stats["folds"] == 3 and stats["families"] == 3 and stats["libraries"] == 1


# --- failures: nothing partial, clear messages --------------------------------------------


def test_md5_mismatch_names_file_and_both_hashes(zenodo, tmp_path, instrclf_cache):
    wrong = "0" * 32
    with pytest.raises(DownloadError) as info:
        get(zenodo, tmp_path / "raw", instrclf_cache, md5s={**zenodo.md5, tinysol.ARCHIVE: wrong})
    message = str(info.value)
    assert tinysol.ARCHIVE in message and wrong in message and md5(zenodo.files[tinysol.ARCHIVE]) in message
    assert files_in(instrclf_cache) == []  # the archive is fetched first: nothing was kept
    assert files_in(tmp_path / "raw") == []


def test_dropped_connection_is_retried_then_fails_leaving_nothing(zenodo, tmp_path, instrclf_cache):
    zenodo.drops[tinysol.ARCHIVE] = 99
    with pytest.raises(DownloadError, match="interrupted") as info:
        get(zenodo, tmp_path / "raw", instrclf_cache, retries=2)
    assert "3 attempt" in str(info.value)
    assert zenodo.hits[tinysol.ARCHIVE] == 3
    assert tinysol.ARCHIVE not in files_in(instrclf_cache)
    assert not any(name.startswith("tmp") for name in files_in(instrclf_cache))


def test_retry_recovers_when_the_server_comes_back(zenodo, tmp_path, instrclf_cache):
    zenodo.drops[tinysol.ARCHIVE] = 1
    get(zenodo, tmp_path / "raw", instrclf_cache)
    assert zenodo.hits[tinysol.ARCHIVE] == 2
    assert rows_in(tmp_path / "raw") == len(ROWS)


def test_404_names_the_url(zenodo, tmp_path, instrclf_cache):
    with pytest.raises(DownloadError, match="404") as info:
        get(zenodo, tmp_path / "raw", instrclf_cache, base_url=zenodo.url + "/nowhere")
    assert f"{zenodo.url}/nowhere/{tinysol.ARCHIVE}" in str(info.value)
    assert zenodo.hits[tinysol.ARCHIVE] == 1  # a 404 is not retried


def no_dns(*args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize("failure", ["refused", "dns"])
def test_unreachable_host_says_how_to_work_offline(tmp_path, monkeypatch, failure):
    if failure == "dns":  # resolution fails inside this process: no resolver is asked
        monkeypatch.setattr(socket, "getaddrinfo", no_dns)
        base_url = "https://zenodo.invalid/records/1/files"
    else:
        base_url = f"http://127.0.0.1:{closed_port()}/files"
    params = params_for(base_url, {n: "a" * 32 for n in tinysol.FILES})
    with pytest.raises(DownloadError) as info:
        fetch(params, tmp_path / "raw")
    message = str(info.value)
    assert "could not reach the host" in message and "data.source: soundfont" in message
    assert "dvc exp run -S data.source=soundfont" in message
    assert not (tmp_path / "raw").exists()


def http_error(status):
    response = requests.Response()
    response.status_code, response.reason = status, "Reason"
    return requests.HTTPError(response=response)


@pytest.mark.parametrize(
    ("exc", "transient", "expected"),
    [
        (http_error(503), True, "HTTP 503"),
        (http_error(429), True, "HTTP 429"),
        (http_error(403), False, "HTTP 403"),
        (http_error(404), False, "not found"),
        (requests.ReadTimeout("read timed out"), True, "interrupted"),
        (requests.ConnectTimeout("connect timed out"), False, "could not reach"),
        (requests.exceptions.ChunkedEncodingError("Connection broken"), True, "interrupted"),
    ],
)
def test_explain_sorts_transient_from_permanent_failures(exc, transient, expected):
    error, retry = tinysol.explain(exc, url="https://example.org/TinySOL.tar.gz")
    assert retry is transient
    assert expected in str(error) and isinstance(error, DownloadError)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (member("TinySOL/../../evil.wav"), "'..'"),
        (member("/tmp/evil.wav"), "absolute path"),
        (member("TinySOL/Winds/link.wav", kind=tarfile.SYMTYPE, link="../../../etc/passwd"), "links outside"),
        (member("TinySOL/abs.wav", kind=tarfile.SYMTYPE, link="/etc/passwd"), "links outside"),
        (member("TinySOL/hard.wav", kind=tarfile.LNKTYPE, link="../outside.wav"), "links outside"),
        (member("TinySOL/null", kind=tarfile.CHRTYPE), "device"),
    ],
    ids=["dotdot", "absolute", "symlink", "abs-symlink", "hardlink", "device"],
)
def test_unsafe_member_is_refused_by_name(zenodo, tmp_path, instrclf_cache, extra, expected):
    publish(zenodo, archive=tarball_bytes(extra=[extra]))
    with pytest.raises(DataError, match=expected) as info:
        get(zenodo, tmp_path / "raw", instrclf_cache)
    assert repr(extra[0].name) in str(info.value)
    assert not (tmp_path / "raw" / "audio").exists()
    assert not (tmp_path / "evil.wav").exists()


UNSAFE_NAMES = [
    ("TinySOL\\..\\..\\evil.wav", "'..'"),
    ("TinySOL/Winds\\..\\..\\..\\evil.wav", "'..'"),
    ("..\\evil.wav", "'..'"),
    ("\\evil.wav", "absolute path"),
    ("\\\\server\\share\\evil.wav", "absolute path"),
    ("C:\\evil.wav", "absolute path"),
    ("C:evil.wav", "absolute path"),
    ("c:/TinySOL/evil.wav", "absolute path"),
    ("//evil.wav", "absolute path"),
    ("TinySOL/..", "'..'"),
]


@pytest.mark.parametrize(("name", "expected"), UNSAFE_NAMES, ids=[n for n, _ in UNSAFE_NAMES])
def test_windows_style_member_names_are_refused_before_anything_is_extracted(tmp_path, name, expected):
    """Backslashes, drive letters and UNC names escape the folder when the archive is unpacked on Windows."""
    archive = tmp_path / "TinySOL.tar.gz"
    archive.write_bytes(tarball_bytes(extra=[member(name)]))
    with pytest.raises(DataError, match=rf"refusing to extract member {re.escape(repr(name))}: .*{expected}"):
        tinysol.extract(archive, tmp_path / "out", first_path=ROWS[0][0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TinySOL.tar.gz"]


_SEGMENT = st.text(st.sampled_from("abcXYZ019 _-."), min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))


@hypothesis_settings(max_examples=150)
@given(
    before=st.lists(_SEGMENT, max_size=3),
    after=st.lists(_SEGMENT, max_size=3),
    separators=st.lists(st.sampled_from(["/", "\\"]), min_size=7, max_size=7),
    escape=st.sampled_from(["..", "/", "\\", "C:", "d:\\", "\\\\host\\share\\", None]),
)
@example(before=["TinySOL"], after=["evil.wav"], separators=["\\"] * 7, escape="..")
@example(before=[], after=["evil.wav"], separators=["/"] * 7, escape="C:")
def test_a_member_name_is_refused_exactly_when_it_could_leave_the_folder(before, after, separators, escape):
    """Plain segments joined by / or \\ pass; a '..' segment anywhere, or a leading root or drive, is refused."""
    if escape in (None, ".."):
        segments = before + ([escape] if escape else []) + after
        if not segments:
            return
        name = "".join(seg + sep for seg, sep in zip(segments, separators)).rstrip("/\\")
        if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            return
    else:
        name = escape + "/".join(before + after or ["x.wav"])
    info = tarfile.TarInfo(name)
    refused = escape is not None
    if refused:
        with pytest.raises(DataError, match=re.escape(repr(name))):
            tinysol.check_member(info, archive="a.tar")
    else:
        tinysol.check_member(info, archive="a.tar")


def test_symlink_inside_the_archive_is_allowed(zenodo, tmp_path, instrclf_cache):
    link = member("TinySOL/Winds/copy.wav", kind=tarfile.SYMTYPE, link="Flute/ordinario/Fl-ord-C4-mf-N-T14d.wav")
    publish(zenodo, archive=tarball_bytes(extra=[link]))
    get(zenodo, tmp_path / "raw", instrclf_cache)
    assert (tmp_path / "raw" / "audio" / "Winds" / "copy.wav").read_bytes() == wav_bytes(0)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [(0o4755, 0o755), (0o2070, 0o640), (0o000, 0o600), (0o777, 0o755)],
    ids=["setuid", "setgid-owner-unreadable", "unreadable", "world-writable"],
)
def test_the_data_filter_sanitises_modes_the_member_check_accepts(zenodo, tmp_path, instrclf_cache, mode, expected):
    """Regular files pass the project's own check; tarfile's ``data`` filter still fixes their modes.

    Without the filter (``fully_trusted``) the setuid bit survives and an unreadable file stays
    unreadable; with the ``tar`` filter the owner-unreadable cases stay unreadable (0o050, 0o000).
    """
    info, data = member("TinySOL/Winds/odd.wav", data=wav_bytes(9))
    info.mode = mode
    tinysol.check_member(info, archive="test")  # the project's check alone lets it through
    publish(zenodo, archive=tarball_bytes(extra=[(info, data)]))
    get(zenodo, tmp_path / "raw", instrclf_cache)
    extracted = tmp_path / "raw" / "audio" / "Winds" / "odd.wav"
    assert stat.S_IMODE(extracted.stat().st_mode) == expected
    assert extracted.read_bytes() == wav_bytes(9)


def test_fetch_leaves_existing_raw_untouched_on_failure(zenodo, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "keep.txt").write_text("old run")
    params = params_for(zenodo.url, {**zenodo.md5, tinysol.METADATA: "f" * 32})
    with pytest.raises(DownloadError, match="md5"):
        fetch(params, raw)
    assert files_in(raw) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["raw"]  # no temp folder left


def test_fetch_replaces_existing_raw_on_success(zenodo, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "stale.txt").write_text("old run")
    stats = fetch(params_for(zenodo.url, zenodo.md5), raw)
    assert not (raw / "stale.txt").exists()
    assert stats["rows"] == len(ROWS) and stats["files_downloaded"] == 2


# --- the final layout check ---------------------------------------------------------------


def test_fetch_refuses_a_source_whose_metadata_lists_missing_audio(zenodo, tmp_path):
    extra = ("Winds/Oboe/ordinario/Ob-ord-A4-mf-N-N.wav", 2, "Winds", "Ob", "Oboe", "A4", "mf")
    md5s = publish(zenodo, metadata=metadata_bytes((*ROWS, extra)))
    with pytest.raises(DataError, match=f"{extra[0]} is missing under"):
        fetch(params_for(zenodo.url, md5s), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_fetch_accepts_metadata_without_instance_id(zenodo, tmp_path):
    md5s = publish(zenodo, metadata=metadata_bytes(columns=[c for c in METADATA_COLUMNS if c != "Instance ID"]))
    stats = fetch(params_for(zenodo.url, md5s), tmp_path / "raw")
    assert (stats["rows"], stats["instruments"], stats["families"], stats["folds"]) == (3, 3, 3, 3)


# --- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"source": "zenodo"}, "data.source"),
        ({"tinysol": {"base_url": "ftp://example.org/files", "md5": {}}}, "data.tinysol.base_url"),
        ({"tinysol": {"base_url": "https:///files", "md5": {n: "a" * 32 for n in tinysol.FILES}}}, "data.tinysol.base_url"),
        ({"tinysol": {"base_url": 42, "md5": {}}}, "data.tinysol.base_url"),
        ({"tinysol": {"base_url": "https://example.org", "md5": "abc"}}, "data.tinysol.md5"),
        ({"tinysol": {"base_url": "https://example.org", "md5": {"TinySOL.tar.gz": "a" * 32}}}, "data.tinysol: md5 lacks"),
        (
            {"tinysol": {"base_url": "https://example.org",
                         "md5": {"TinySOL.tar.gz": "z" * 32, "TinySOL_metadata.csv": "a" * 32}}},
            "data.tinysol.md5.TinySOL.tar.gz",
        ),
        (
            {"tinysol": {"base_url": "https://example.org",
                         "md5": {"TinySOL.tar.gz": "a" * 32, "TinySOL_metadata.csv": "a" * 31}}},
            "data.tinysol.md5.TinySOL_metadata.csv",
        ),
        ({"tinysol": {"base_url": "https://example.org", "md5": {n: "a" * 32 for n in (*tinysol.FILES, "x")}}},
         "data.tinysol.md5"),
    ],
    ids=["source", "ftp", "no-host", "not-str", "md5-str", "md5-missing", "md5-not-hex", "md5-short", "md5-extra"],
)
def test_bad_params_raise_naming_the_key_before_any_work(tmp_path, change, key):
    params = params_for("https://example.org", {n: "a" * 32 for n in tinysol.FILES})
    params["data"].update(change)
    with pytest.raises(ParameterError, match=key.replace(".", r"\.")):
        fetch(params, tmp_path / "raw")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_soundfont_source_is_dispatched_with_seed_and_settings(tmp_path, monkeypatch):
    from instrclf.sources.soundfont import libraries, render

    params = settings.load(ROOT / "params.yaml")
    params["data"]["source"] = "soundfont"
    data = settings.section(params, settings.DataSettings)
    calls = []

    def fake_render(out_dir, *, seed, settings):
        calls.append((seed, settings))
        raw = Path(out_dir)
        (raw / tinysol.METADATA).write_bytes(metadata_bytes())
        for i, row in enumerate(ROWS):
            (raw / "audio" / row[0]).parent.mkdir(parents=True, exist_ok=True)
            (raw / "audio" / row[0]).write_bytes(wav_bytes(i))
        return {"notes_rendered": len(ROWS)}

    monkeypatch.setattr(libraries, "resolve", lambda names, check=True: [])
    monkeypatch.setattr(render, "render", fake_render)
    stats = sources.fetch(data, seed=params["seed"], out_dir=tmp_path / "raw")
    assert calls == [(params["seed"], data.soundfont)]
    assert stats["notes_rendered"] == stats["rows"] == len(ROWS)


# --- the stage script ---------------------------------------------------------------------


def run_stage(params, tmp_path, *args):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    command = [sys.executable, str(ROOT / "stages" / "download.py"), "--params", str(path), *args]
    return subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), timeout=120)


def test_stage_prints_one_summary_line_and_exits_zero(zenodo, tmp_path):
    done = run_stage(params_for(zenodo.url, zenodo.md5), tmp_path, "--out", str(tmp_path / "raw"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("download: files_downloaded=2, ") and "rows=3" in done.stdout
    assert len(done.stdout.splitlines()) == 1
    assert rows_in(tmp_path / "raw") == len(ROWS)


def test_stage_reports_errors_without_traceback(tmp_path):
    params = params_for(f"http://127.0.0.1:{closed_port()}/files", {n: "a" * 32 for n in tinysol.FILES})
    done = run_stage(params, tmp_path, "--out", str(tmp_path / "raw"))
    assert done.returncode == 1
    assert "error: download: could not reach the host" in done.stderr
    assert "Traceback" not in done.stderr


def test_stage_needs_its_output_path(tmp_path):
    done = run_stage(params_for("https://example.org", {n: "a" * 32 for n in tinysol.FILES}), tmp_path)
    assert done.returncode == 2 and "--out" in done.stderr


# Mutation run (benchmarks/mutation.py): cases beside the tested ones that mutants survived.


def test_a_missing_file_url_says_which_url_and_why_in_words(tmp_path, instrclf_cache):
    mirror = tmp_path / "mirror"
    mirror.mkdir()  # empty: the archive is not there
    with pytest.raises(DownloadError) as info:
        fetch(params_for(mirror.as_uri(), {n: "a" * 32 for n in tinysol.FILES}), tmp_path / "raw")
    message = str(info.value)
    assert f"{mirror.as_uri()}/{tinysol.ARCHIVE}" in message and message.endswith("No such file or directory")
    assert "[Errno" not in message


def test_http_500_is_retried():
    error, retry = tinysol.explain(http_error(500), url="https://example.org/TinySOL.tar.gz")
    assert retry is True and "HTTP 500" in str(error)


@pytest.mark.parametrize(
    ("exc", "transient", "expected"),
    [
        (requests.HTTPError("no response attached"), False, "failed: no response attached"),
        (requests.exceptions.InvalidURL("bad host name"), False, "failed: bad host name"),
        (requests.ConnectionError(), True, "was interrupted"),
        (requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer")), True,
         "interrupted ([Errno 104] Connection reset by peer)"),
    ],
    ids=["http-error-without-response", "invalid-url", "no-args", "reset"],
)
def test_other_request_failures_name_the_url_and_the_reason(exc, transient, expected):
    url = "https://example.org/files/TinySOL.tar.gz"
    error, retry = tinysol.explain(exc, url=url)
    assert retry is transient and isinstance(error, DownloadError)
    assert url in str(error) and expected in str(error)


def test_unreachable_host_names_the_host_and_the_innermost_reason():
    """urllib3 wraps the refusal twice; the message gives the host and the refusal itself, not the wrappers."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    refused = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    exc = requests.ConnectionError(MaxRetryError(None, "/files/TinySOL.tar.gz", reason=refused))
    error, retry = tinysol.explain(exc, url="https://zenodo.example:8443/files/TinySOL.tar.gz")
    message = str(error)
    assert retry is False and "host zenodo.example:8443 " in message and "Connection refused" in message
    assert "Max retries" not in message and "MaxRetryError" not in message


def test_an_archive_without_the_metadatas_first_path_names_that_path(tmp_path):
    archive = tmp_path / "TinySOL.tar.gz"
    archive.write_bytes(tarball_bytes())
    with pytest.raises(DataError, match=re.escape(repr("Winds/Flute/missing.wav"))):
        tinysol.extract(archive, tmp_path / "out", first_path="Winds/Flute/missing.wav")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"Path,Fold\n", "has no rows with a 'Path' column"),
        (b"Path,Fold\n,0\nWinds/a.wav,1\n", "has no rows with a 'Path' column"),
        (b"Fold\n0\n", "has no rows with a 'Path' column"),
        (b"Path,Fold\n\xff\xfe,0\n", "cannot read"),
    ],
    ids=["header-only", "empty-first-path", "no-path-column", "not-utf8"],
)
def test_unusable_metadata_is_refused_naming_the_file(tmp_path, text, expected):
    metadata = tmp_path / tinysol.METADATA
    metadata.write_bytes(text)
    with pytest.raises(DataError) as info:
        tinysol.first_path(metadata)
    assert str(metadata) in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ftp://example.org/files", "must be an http://, https:// or file:// URL, got 'ftp://example.org/files'"),
        (42, "must be an http://, https:// or file:// URL, got 42"),
        ("https:///files", "must name a host"),
        ("file://", "must name a folder, got 'file://'"),
    ],
)
def test_a_bad_base_url_is_refused_naming_the_key(value, expected):
    with pytest.raises(ParameterError) as info:
        tinysol.check_base_url(value)
    assert str(info.value).startswith("data.tinysol.base_url ") and expected in str(info.value)


def test_a_base_url_loses_its_trailing_slashes_only():
    assert tinysol.check_base_url("https://example.org/files//") == "https://example.org/files"
    assert tinysol.check_base_url("file:///data/mirror/") == "file:///data/mirror"


def test_without_a_setting_the_cache_is_the_users_instrclf_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(tinysol.CACHE_ENV, "")  # set but empty counts as unset
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tinysol.cache_location() == tmp_path / "xdg" / "instrclf"
    assert tinysol.cache_location(tmp_path / "mine") == tmp_path / "mine"


def test_the_stage_retries_three_times_waiting_2_4_8_seconds(zenodo, tmp_path, monkeypatch, caplog):
    """What `dvc repro download` does on a dropped connection (download's defaults): logged, then given up."""
    waits = []
    monkeypatch.setattr(tinysol.time, "sleep", waits.append)
    zenodo.drops[tinysol.ARCHIVE] = 99
    params = params_for(zenodo.url, zenodo.md5)
    with caplog.at_level("WARNING", logger=tinysol.__name__), pytest.raises(DownloadError, match="4 attempt"):
        fetch(params, tmp_path / "raw")
    assert waits == [2.0, 4.0, 8.0] and zenodo.hits[tinysol.ARCHIVE] == 4
    retries = [r.getMessage() for r in caplog.records]
    assert len(retries) == 3 and all(m.startswith(f"the download of {zenodo.url}/{tinysol.ARCHIVE} was interrupted")
                                     for m in retries)
    assert [m[m.index(" Retrying"):] for m in retries] == [
        " Retrying in 2 s (1 of 3).", " Retrying in 4 s (2 of 3).", " Retrying in 8 s (3 of 3)."]


@pytest.fixture
def timeouts(monkeypatch):
    """The ``timeout`` of every ``requests.get`` call made while the test runs, in order."""
    asked = []
    real_get = requests.get

    def recording_get(url, *args, **kwargs):
        asked.append(kwargs.get("timeout"))
        return real_get(url, *args, **kwargs)

    monkeypatch.setattr(requests, "get", recording_get)
    return asked


def test_the_stage_waits_60_s_for_an_answer_and_shows_progress(zenodo, tmp_path, timeouts, capfd):
    """download's defaults: a 60 s timeout per request and a progress bar on stderr."""
    fetch(params_for(zenodo.url, zenodo.md5), tmp_path / "raw")
    assert timeouts and set(timeouts) == {60}
    assert "100%" in capfd.readouterr().err


def test_download_forwards_its_cache_wait_and_creates_its_folder(zenodo, tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(tinysol.time, "sleep", waits.append)
    zenodo.drops[tinysol.ARCHIVE] = 1
    cache = tmp_path / "my-cache"
    get(zenodo, tmp_path / "x", cache, wait=0.25)  # get() creates its folder; this one must not exist yet
    stats = tinysol.download(tmp_path / "a" / "b", settings=settings.TinysolSettings(base_url=zenodo.url, md5=zenodo.md5),
                             cache_dir=cache, progressbar=False)
    assert waits == [0.25] and files_in(cache) == sorted(tinysol.FILES)
    assert stats["files_downloaded"] == 0 and rows_in(tmp_path / "a" / "b") == len(ROWS)


def test_archive_size_is_reported_in_megabytes_to_one_decimal(tmp_path, instrclf_cache):
    noise = np.random.default_rng(0).bytes(330_000)  # incompressible: the archive is ~0.33 MB
    mirror = tmp_path / "mirror"
    md5s = file_mirror(mirror, archive=tarball_bytes(extra=[member("TinySOL/noise.bin", data=noise)]))
    found = settings.TinysolSettings(base_url=mirror.as_uri(), md5=md5s)
    stats = tinysol.download(tmp_path / "raw", settings=found, progressbar=False)
    assert stats["archive_mb"] == 0.3 and stats["archive_files"] == len(ROWS) + 1


def test_md5_mismatch_says_nothing_was_kept_and_what_to_check(zenodo, tmp_path, instrclf_cache):
    with pytest.raises(DownloadError) as info:
        get(zenodo, tmp_path / "raw", instrclf_cache, md5s={**zenodo.md5, tinysol.METADATA: "0" * 32})
    assert str(info.value).endswith("Nothing was kept; check data.tinysol.md5 and data.tinysol.base_url.")


@pytest.mark.parametrize(
    ("name", "kind", "link", "refused"),
    [
        ("TinySOL/up", tarfile.SYMTYPE, "..", False),  # the archive's root: still inside the folder
        ("TinySOL/up", tarfile.SYMTYPE, "../..", True),  # exactly the folder's parent
        ("TinySOL/a/up", tarfile.SYMTYPE, "../../..", True),
        ("TinySOL/a/up", tarfile.SYMTYPE, "b/../../../..", True),
        ("TinySOL/a/ok", tarfile.SYMTYPE, "../../TinySOL/x.wav", False),
        ("TinySOL/hard", tarfile.LNKTYPE, "..", True),  # hard links are relative to the root
        ("TinySOL/hard", tarfile.LNKTYPE, "TinySOL/x.wav", False),
    ],
)
def test_a_link_is_refused_exactly_when_it_leads_out_of_the_folder(name, kind, link, refused):
    """Each link alone against the project's own check (the data filter is a second line, not the first)."""
    info, _ = member(name, kind=kind, link=link)
    if refused:
        with pytest.raises(DataError, match=rf"refusing to extract member {re.escape(repr(name))}: it links outside"):
            tinysol.check_member(info, archive="a.tar")
    else:
        tinysol.check_member(info, archive="a.tar")


def test_a_base_url_with_a_trailing_slash_fetches_the_same_files(zenodo, tmp_path, instrclf_cache):
    get(zenodo, tmp_path / "raw", instrclf_cache, base_url=zenodo.url + "/")
    assert rows_in(tmp_path / "raw") == len(ROWS) and zenodo.hits[tinysol.ARCHIVE] == 1


def test_download_passes_its_own_timeout_and_quiet_progress_on(zenodo, tmp_path, timeouts, capfd, instrclf_cache):
    get(zenodo, tmp_path / "raw", instrclf_cache, timeout=5)  # get() asks for no progress bar
    assert timeouts and set(timeouts) == {5}
    assert "100%" not in capfd.readouterr().err


def test_a_mirror_folder_whose_name_ends_in_x_is_found(tmp_path, instrclf_cache):
    mirror = tmp_path / "MIX"
    md5s = file_mirror(mirror)
    assert tinysol.check_base_url(mirror.as_uri() + "/") == mirror.as_uri()
    found = settings.TinysolSettings(base_url=mirror.as_uri(), md5=md5s)
    tinysol.download(tmp_path / "raw", settings=found, progressbar=False)
    assert rows_in(tmp_path / "raw") == len(ROWS)


def test_a_mirror_folder_with_a_space_in_its_name_is_found_through_its_file_url(tmp_path, instrclf_cache):
    """A file URL spells a space %20 (what Path.as_uri writes): the folder it names is read, not 'my%20mirror'."""
    mirror = tmp_path / "my mirror"
    md5s = file_mirror(mirror)
    assert "%20" in mirror.as_uri()
    found = settings.TinysolSettings(base_url=mirror.as_uri(), md5=md5s)
    tinysol.download(tmp_path / "raw", settings=found, progressbar=False)
    assert rows_in(tmp_path / "raw") == len(ROWS)


# Hostile mutants, round 7 (benchmarks/hostile_mutants/round7): cases beside the tested ones.


@pytest.mark.parametrize("decoy", ["backup/OldBrass/Horn/x.wav", "XBrass/Horn/x.wav", "TinySOL/2Brass/Horn/x.wav"])
def test_the_archive_root_is_a_whole_folder_not_the_end_of_a_longer_name(decoy):
    """A member whose name merely ends with the metadata's path (``OldBrass/...`` for ``Brass/...``)
    is not the note: the root is the folder the path starts in."""
    names = [decoy, "TinySOL/Brass/Horn/x.wav"]
    assert tinysol.find_root(names, path="Brass/Horn/x.wav") == "TinySOL/"
    assert tinysol.find_root(["Brass/Horn/x.wav", decoy], path="Brass/Horn/x.wav") == ""
