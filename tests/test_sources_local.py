"""Tests of the ``local`` source: your own folder in TinySOL's layout, checked, then linked or copied."""

import errno
import os
from pathlib import Path

import pytest
from synthetic import RAW_ROWS, make_raw_dir

from instrclf import layout, settings, sources
from instrclf.errors import DataError, ParameterError
from instrclf.sources import local

REPO = Path(__file__).resolve().parents[1]


def data_settings(path) -> settings.DataSettings:
    params = settings.load(REPO / "params.yaml")
    params["data"].update(source="local", local={"path": str(path)})
    return settings.section(params, settings.DataSettings)


def test_a_good_folder_becomes_the_raw_folder(tmp_path):
    own = make_raw_dir(tmp_path / "own")
    (own / "audio" / "notes.txt").write_text("not listed: not copied")
    figures = sources.fetch(data_settings(own), seed=1, out_dir=tmp_path / "raw")
    raw = tmp_path / "raw"
    # the metadata as given, plus the default library of a set that names none
    assert (raw / layout.METADATA_FILE).read_text().splitlines() == [
        line + (",Library" if i == 0 else ",own") for i, line in enumerate((own / layout.METADATA_FILE).read_text().splitlines())
    ]
    for path, *_ in RAW_ROWS:
        assert (raw / "audio" / path).read_bytes() == (own / "audio" / path).read_bytes()
    assert not (raw / "audio" / "notes.txt").exists()
    assert figures["rows"] == len(RAW_ROWS) and figures["folds"] == 3 and figures["libraries"] == 1
    assert figures["files_linked"] + figures["files_copied"] == len(RAW_ROWS)


def test_files_are_hard_linked_on_the_same_filesystem(tmp_path):
    own = make_raw_dir(tmp_path / "own")
    figures = local.copy(own, tmp_path / "raw")
    assert figures == {"files_linked": len(RAW_ROWS), "files_copied": 0}
    path = RAW_ROWS[0][0]
    assert os.path.samefile(own / "audio" / path, tmp_path / "raw" / "audio" / path)


@pytest.mark.parametrize("relative", [True, False], ids=["relative-link", "absolute-link"])
def test_audio_files_that_are_symbolic_links_arrive_as_their_targets(tmp_path, relative):
    """A folder of symlinks into a sample collection: data/raw gets the audio, not links that lead nowhere."""
    own = make_raw_dir(tmp_path / "own")
    store = tmp_path / "store"
    store.mkdir()
    for i, (path, *_) in enumerate(RAW_ROWS):
        audio = own / "audio" / path
        kept = store / f"{i}.wav"
        audio.rename(kept)
        audio.symlink_to(os.path.relpath(kept, audio.parent) if relative else kept)
    figures = sources.fetch(data_settings(own), seed=1, out_dir=tmp_path / "raw")
    assert figures["files_linked"] == len(RAW_ROWS)
    for i, (path, *_) in enumerate(RAW_ROWS):
        arrived = tmp_path / "raw" / "audio" / path
        assert not arrived.is_symlink() and os.path.samefile(arrived, store / f"{i}.wav")


def test_files_are_copied_where_links_are_refused(tmp_path, monkeypatch):
    def refuse(src, dst, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refuse)
    own = make_raw_dir(tmp_path / "own")
    assert local.copy(own, tmp_path / "raw") == {"files_linked": 0, "files_copied": len(RAW_ROWS)}
    path = RAW_ROWS[1][0]
    assert not os.path.samefile(own / "audio" / path, tmp_path / "raw" / "audio" / path)
    assert (own / "audio" / path).read_bytes() == (tmp_path / "raw" / "audio" / path).read_bytes()


def test_a_missing_folder_is_named_before_any_work(tmp_path):
    with pytest.raises(DataError, match=f"data.local.path: {tmp_path / 'nowhere'} does not exist") as info:
        sources.fetch(data_settings(tmp_path / "nowhere"), seed=1, out_dir=tmp_path / "raw")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "own.csv").write_text("Path\n")
    with pytest.raises(DataError, match="own.csv is not a folder"):
        local.check(tmp_path / "own.csv")


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        (lambda own: (own / layout.METADATA_FILE).unlink(), "metadata file not found"),
        (lambda own: (own / layout.METADATA_FILE).write_text("Path,Fold\nx.wav,0\n"), r"missing column\(s\) \['Family'"),
        (lambda own: (own / layout.METADATA_FILE).write_bytes(b"\xff\xfe\x00garbage"), "not a readable CSV"),
        (lambda own: (own / "audio" / RAW_ROWS[2][0]).unlink(), f"{RAW_ROWS[2][0]} is missing"),
        (lambda own: (own / layout.METADATA_FILE).write_text(
            "Path,Fold,Family,Instrument (abbr.)\nWinds/Flute/ordinario/Fl-ord-C4-mf-N-N.wav,7,Winds,Fl\n"), "Fold must be"),
    ],
    ids=["no-csv", "bad-columns", "not-csv", "missing-audio", "bad-fold"],
)
def test_a_folder_out_of_layout_is_named_in_one_line(tmp_path, spoil, expected):
    own = make_raw_dir(tmp_path / "own")
    spoil(own)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "keep.txt").write_text("old run")
    with pytest.raises(DataError, match=expected) as info:
        sources.fetch(data_settings(own), seed=1, out_dir=raw)
    message = str(info.value)
    assert message.startswith(f"data.local.path: {own} is not in TinySOL's layout") and "\n" not in message
    assert [p.name for p in raw.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["own", "raw"]


def test_the_output_folder_cannot_be_the_source(tmp_path):
    own = make_raw_dir(tmp_path / "raw")
    with pytest.raises(ParameterError, match="is the download output"):
        sources.fetch(data_settings(own), seed=1, out_dir=tmp_path / "raw")
    assert (own / layout.METADATA_FILE).is_file()


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("inside", ["sub", "a/b/own"], ids=["child", "grandchild"])
def test_a_folder_inside_the_output_is_refused_before_anything_is_deleted(tmp_path, inside):
    """The swap replaces the whole output folder: a source inside it would be deleted with it."""
    raw = tmp_path / "raw"
    own = make_raw_dir(raw / inside)
    (raw / "old.txt").write_text("previous run")
    before = _tree(raw)
    with pytest.raises(ParameterError, match=rf"data\.local\.path '{own}' is the download output '{raw}' \(or inside it\)"):
        sources.fetch(data_settings(own), seed=1, out_dir=raw)
    assert _tree(raw) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no temporary folder either


def test_a_link_or_dotted_path_to_the_output_is_refused(tmp_path):
    raw = tmp_path / "raw"
    make_raw_dir(raw / "own")
    (tmp_path / "alias").symlink_to(raw, target_is_directory=True)
    for path in (tmp_path / "alias" / "own", tmp_path / "raw" / "x" / ".." / "own"):
        (raw / "x").mkdir(exist_ok=True)
        with pytest.raises(ParameterError, match="is the download output"):
            sources.fetch(data_settings(path), seed=1, out_dir=raw)
        assert (raw / "own" / layout.METADATA_FILE).is_file()


def test_a_sibling_with_the_outputs_name_as_prefix_is_fine(tmp_path):
    """raw-own is not inside raw: only a real parent counts, not a common string prefix."""
    own = make_raw_dir(tmp_path / "raw-own")
    figures = sources.fetch(data_settings(own), seed=1, out_dir=tmp_path / "raw")
    assert figures["rows"] == len(RAW_ROWS) and (own / layout.METADATA_FILE).is_file()


def test_a_home_relative_path_is_expanded(tmp_path, monkeypatch):
    """data.local.path: ~/own is the user's folder, not a folder named '~' in the working directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    make_raw_dir(tmp_path / "home" / "own")
    figures = sources.fetch(data_settings("~/own"), seed=1, out_dir=tmp_path / "raw")
    assert figures["rows"] == len(RAW_ROWS)
    assert not (tmp_path / "~").exists()
    # and ~ pointing into the output is refused like the plain path
    make_raw_dir(tmp_path / "raw" / "own")
    monkeypatch.setenv("HOME", str(tmp_path / "raw"))
    with pytest.raises(ParameterError, match="is the download output"):
        sources.fetch(data_settings("~/own"), seed=1, out_dir=tmp_path / "raw")
    assert (tmp_path / "raw" / "own" / layout.METADATA_FILE).is_file()


# Mutation run (benchmarks/mutation.py): cases beside the tested ones that mutants survived.

TWO_IN_ONE_FOLDER = (
    ("Winds/Flute/ordinario/Fl-ord-C4-mf-N-N.wav", 0, "Winds", "Fl"),
    ("Winds/Flute/ordinario/Fl-ord-D4-mf-N-N.wav", 1, "Winds", "Fl"),
)


def test_notes_sharing_a_folder_land_in_a_new_nested_output(tmp_path):
    own = make_raw_dir(tmp_path / "own", rows=TWO_IN_ONE_FOLDER)
    figures = local.copy(own, tmp_path / "a" / "b" / "raw")
    assert figures["files_linked"] + figures["files_copied"] == 2
    for path, *_ in TWO_IN_ONE_FOLDER:
        assert (tmp_path / "a" / "b" / "raw" / "audio" / path).read_bytes() == (own / "audio" / path).read_bytes()


def test_copy_refuses_a_folder_with_a_missing_note_before_copying_anything(tmp_path):
    own = make_raw_dir(tmp_path / "own")
    (own / "audio" / RAW_ROWS[2][0]).unlink()
    with pytest.raises(DataError, match="Vn-ord-G3-pp-4c-N.wav"):
        local.copy(own, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_a_link_failure_names_both_files_and_the_reason_in_words(tmp_path):
    own = make_raw_dir(tmp_path / "own")
    source, target = own / "audio" / RAW_ROWS[0][0], tmp_path / "taken.wav"
    target.write_bytes(b"already here")
    with pytest.raises(DataError) as info:
        local.link_or_copy(source, target)
    assert str(info.value) == f"cannot link {source} to {target}: File exists"
    assert target.read_bytes() == b"already here"


def test_a_copy_failure_names_both_files_and_the_reason_in_words(tmp_path):
    folder = tmp_path / "a-folder"  # linking a folder is refused (EPERM): copying it then fails
    folder.mkdir()
    with pytest.raises(DataError) as info:
        local.link_or_copy(folder, tmp_path / "copy")
    assert str(info.value) == f"cannot copy {folder} to {tmp_path / 'copy'}: Is a directory"


def test_a_folder_inside_a_relative_output_path_is_refused(tmp_path, monkeypatch):
    """dvc runs the stage with out_dir 'data/raw' (relative): a source inside it is refused all the same."""
    monkeypatch.chdir(tmp_path)
    own = make_raw_dir(tmp_path / "data" / "raw" / "own")
    with pytest.raises(ParameterError, match="is the download output"):
        sources.fetch(data_settings(own), seed=1, out_dir=Path("data") / "raw")
    assert (own / layout.METADATA_FILE).is_file() and sorted(p.name for p in (tmp_path / "data").iterdir()) == ["raw"]


@pytest.mark.parametrize("refusal", [errno.EPERM, errno.EACCES, errno.EMLINK, errno.EOPNOTSUPP], ids=errno.errorcode.get)
def test_files_are_copied_whatever_way_the_filesystem_refuses_a_link(tmp_path, monkeypatch, refusal):
    """EPERM is what Linux's protected_hardlinks answers for a file of another user (a shared sample library)."""
    def refuse(src, dst, **kwargs):
        raise OSError(refusal, os.strerror(refusal))

    monkeypatch.setattr(os, "link", refuse)
    own = make_raw_dir(tmp_path / "own")
    assert local.copy(own, tmp_path / "raw") == {"files_linked": 0, "files_copied": len(RAW_ROWS)}
    for path, *_ in RAW_ROWS:
        assert (tmp_path / "raw" / "audio" / path).read_bytes() == (own / "audio" / path).read_bytes()


def test_symbolic_links_arrive_as_their_targets_where_links_are_refused(tmp_path, monkeypatch):
    """On another device (no hard link) a relative symlink is copied as the audio it points to, not as a link."""
    def refuse(src, dst, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    own = make_raw_dir(tmp_path / "own")
    store = tmp_path / "store"
    store.mkdir()
    for i, (path, *_) in enumerate(RAW_ROWS):
        audio = own / "audio" / path
        audio.rename(store / f"{i}.wav")
        audio.symlink_to(os.path.relpath(store / f"{i}.wav", audio.parent))
    monkeypatch.setattr(os, "link", refuse)
    assert local.copy(own, tmp_path / "raw") == {"files_linked": 0, "files_copied": len(RAW_ROWS)}
    for i, (path, *_) in enumerate(RAW_ROWS):
        arrived = tmp_path / "raw" / "audio" / path
        assert not arrived.is_symlink() and arrived.read_bytes() == (store / f"{i}.wav").read_bytes()


# --------------------------------------------------------------------------- the checksum list (clean's dependency)


def test_the_checksum_list_names_every_raw_file_and_sha256sum_accepts_it(tmp_path):
    """data/raw.sha256 in sha256sum's format, sorted, every file of the raw folder: `sha256sum -c` passes
    inside it and fails, naming the file, once one byte of a recording changes."""
    import hashlib
    import subprocess

    own = make_raw_dir(tmp_path / "own")
    sources.fetch(data_settings(own), seed=1, out_dir=tmp_path / "raw", checksums=tmp_path / "raw.sha256")
    raw, listed = tmp_path / "raw", (tmp_path / "raw.sha256").read_text().splitlines()
    files = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*") if p.is_file())
    assert [line.split("  ", 1)[1] for line in listed] == files and len(files) == len(RAW_ROWS) + 1
    for line in listed:
        digest, name = line.split("  ", 1)
        assert digest == hashlib.sha256((raw / name).read_bytes()).hexdigest()
    check = subprocess.run(["sha256sum", "--quiet", "-c", str(tmp_path / "raw.sha256")], cwd=raw, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    changed = raw / "audio" / RAW_ROWS[1][0]
    changed.unlink()  # a hard link into the own folder: replace the file, not the user's recording
    changed.write_bytes((own / "audio" / RAW_ROWS[1][0]).read_bytes()[:-1] + b"\x01")
    check = subprocess.run(["sha256sum", "--quiet", "-c", str(tmp_path / "raw.sha256")], cwd=raw, capture_output=True, text=True)
    assert check.returncode == 1 and f"audio/{RAW_ROWS[1][0]}: FAILED" in check.stdout


def test_a_failed_download_leaves_the_checksum_list_as_it_was(tmp_path):
    own = make_raw_dir(tmp_path / "own")
    sums = tmp_path / "raw.sha256"
    sources.fetch(data_settings(own), seed=1, out_dir=tmp_path / "raw", checksums=sums)
    before = sums.read_bytes()
    (own / layout.METADATA_FILE).write_text("Path,nothing else\n")
    with pytest.raises(DataError):
        sources.fetch(data_settings(own), seed=1, out_dir=tmp_path / "raw", checksums=sums)
    assert sums.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["own", "raw", "raw.sha256"]
