"""instrclf.layout: each inter-stage file has one reader that refuses bad content with one DataError."""

import gc
import os
import re
import sys

import numpy as np
import pandas as pd
import pytest

from instrclf import layout
from instrclf.errors import DataError

HEADER = "Path,Fold,Family,Instrument (abbr.)"
GOOD_ROWS = ["Winds/Flute/b.wav,1,Winds,Fl", "Brass/Trombone/a.wav,0,Brass,Tbn"]


def write_raw(root, rows, *, header=HEADER, audio=True):
    """A raw folder: the metadata CSV from ``rows`` (CSV lines) and, with ``audio``, a file per row."""
    root.mkdir(parents=True, exist_ok=True)
    (root / layout.METADATA_FILE).write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    if audio:
        for row in rows:
            path = root / layout.AUDIO_DIR / row.split(",")[0]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"RIFF")
    return root


def test_read_metadata_sorts_and_types(tmp_path):
    table = layout.read_metadata(write_raw(tmp_path / "raw", GOOD_ROWS))
    assert list(table.columns) == ["Path", "fold", "family", "instrument", "library"]
    assert list(table["Path"]) == ["Brass/Trombone/a.wav", "Winds/Flute/b.wav"]
    assert list(table["fold"]) == [0, 1] and table["fold"].dtype.kind == "i"
    assert list(table["library"]) == [layout.DEFAULT_LIBRARY] * 2  # no Library column: "default"
    assert list(layout.label_column(table, target="family")) == ["Brass", "Winds"]
    assert list(layout.label_column(table, target="instrument")) == ["Tbn", "Fl"]


def test_read_metadata_keeps_the_library_column(tmp_path):
    rows = [r + ",FluidR3_GM" for r in GOOD_ROWS]
    table = layout.read_metadata(write_raw(tmp_path / "raw", rows, header=HEADER + ",Library"))
    assert list(table["library"]) == ["FluidR3_GM", "FluidR3_GM"]


BAD_ROWS = [
    ("../escape.wav,0,Winds,Fl", "Path '../escape.wav' must be a relative path"),
    ("/abs/x.wav,0,Winds,Fl", "Path '/abs/x.wav' must be a relative path"),
    ("Winds\\x.wav,0,Winds,Fl", "must be a relative path"),
    ("x/../../y.wav,0,Winds,Fl", "must be a relative path"),
    ("Winds/Flute/b.wav,1,Winds,Fl", "Winds/Flute/b.wav is listed more than once"),
    ("f7.wav,7,Winds,Fl", "f7.wav: Fold must be an integer in 0..4, got '7'"),
    ("fx.wav,x,Winds,Fl", "fx.wav: Fold must be an integer in 0..4, got 'x'"),
    ("f15.wav,1.5,Winds,Fl", "f15.wav: Fold must be an integer in 0..4, got '1.5'"),
    ("fm.wav,-1,Winds,Fl", "got '-1'"),
    ("g.wav,0,Strings,Guitar", "g.wav: instrument 'Guitar' is not one of TinySOL's"),
    ("p.wav,0,Percussion,Fl", "p.wav: family 'Percussion' is not one of TinySOL's ['Brass', 'Keyboards', 'Strings', 'Winds']"),
    ("m.wav,0,Brass,Fl", "m.wav: instrument Fl belongs to family Winds, not 'Brass'"),
]


@pytest.mark.parametrize(("row", "problem"), BAD_ROWS, ids=[r for r, _ in BAD_ROWS])
def test_read_metadata_refuses_each_problem(tmp_path, row, problem):
    raw = write_raw(tmp_path / "raw", [*GOOD_ROWS, row], audio=False)
    with pytest.raises(DataError) as error:
        layout.read_metadata(raw, check_audio=False)
    message = str(error.value)
    assert message.startswith(f"{raw / layout.METADATA_FILE}: bad metadata: ")
    assert problem in message and "\n" not in message


def test_read_metadata_lists_every_problem_in_one_error(tmp_path):
    chosen = [BAD_ROWS[i] for i in (0, 4, 5, 6, 7, 9, 10, 11)]
    raw = write_raw(tmp_path / "raw", [*GOOD_ROWS, *(r for r, _ in chosen)], audio=False)
    message = str(pytest.raises(DataError, layout.read_metadata, raw).value)
    for _, problem in chosen:
        assert problem in message


def test_read_metadata_caps_a_long_list(tmp_path):
    raw = write_raw(tmp_path / "raw", [f"n{i}.wav,9,Winds,Fl" for i in range(25)], audio=False)
    message = str(pytest.raises(DataError, layout.read_metadata, raw).value)
    assert message.count("Fold must be") == 10 and message.endswith("; and 15 more")


@pytest.mark.parametrize("library", ["", " ", "a/b", "..", "-x", "lib\\x"])
def test_read_metadata_refuses_an_empty_or_unsafe_library_field(tmp_path, library):
    """A library becomes part of the evaluation's split: an empty cell is not a library."""
    raw = write_raw(tmp_path / "raw", [GOOD_ROWS[0] + ",A", "Brass/Trombone/a.wav,0,Brass,Tbn," + library],
                    header=HEADER + ",Library", audio=False)
    with pytest.raises(DataError, match=rf"Brass/Trombone/a\.wav: Library {re.escape(repr(library))} must be a plain name"):
        layout.read_metadata(raw, check_audio=False)


def test_read_metadata_refuses_a_bad_library_name(tmp_path):
    raw = write_raw(tmp_path / "raw", ["a.wav,0,Winds,Fl,../lib"], header=HEADER + ",Library", audio=False)
    with pytest.raises(DataError, match=r"a\.wav: Library '\.\./lib' must be a plain name"):
        layout.read_metadata(raw, check_audio=False)


def test_read_metadata_checks_audio(tmp_path):
    raw = write_raw(tmp_path / "raw", GOOD_ROWS)
    (raw / layout.AUDIO_DIR / "Winds/Flute/b.wav").unlink()
    with pytest.raises(DataError, match=r"metadata\.csv: bad metadata: Winds/Flute/b\.wav is missing under .*audio$"):
        layout.read_metadata(raw)
    assert len(layout.read_metadata(raw, check_audio=False)) == 2


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (bytes(range(256)) * 8, r"not a readable CSV|missing column"),
        (b"\x00\x01\x02\xff\xfe\n\x80\x81,\x82\n", r"not a readable CSV|missing column"),
        (b"", r"not a readable CSV"),
        (HEADER.encode() + b"\n", r"no rows"),
        (b"Path,Fold,Family\na.wav,0,Winds\n", r"missing column\(s\) \['Instrument \(abbr\.\)'\]"),
    ],
    ids=["binary", "binary-lines", "empty", "header-only", "missing-column"],
)
def test_read_metadata_refuses_a_corrupt_csv(tmp_path, content, match):
    (tmp_path / layout.METADATA_FILE).write_bytes(content)
    with pytest.raises(DataError, match=match) as error:
        layout.read_metadata(tmp_path, check_audio=False)
    assert str(error.value).startswith(str(tmp_path / layout.METADATA_FILE))


def test_read_metadata_reads_only_its_columns_and_still_names_the_whole_header(tmp_path, monkeypatch):
    """TinySOL's ten other columns are never parsed into the table (two thirds of its memory on a large
    set); a missing column's message still lists every column the file has."""
    (tmp_path / layout.METADATA_FILE).write_text("Path,Pitch,Fold,Family,Dynamics\na.wav,C4,0,Winds,ff\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['Instrument \(abbr\.\)'\]; "
                                        r"found \['Path', 'Pitch', 'Fold', 'Family', 'Dynamics'\]$"):
        layout.read_metadata(tmp_path, check_audio=False)
    (tmp_path / layout.METADATA_FILE).write_text("Path,Pitch,Fold,Family,Instrument (abbr.),Library,Dynamics\n"
                                                 "a.wav,C4,0,Winds,Fl,A,ff\n")
    parsed = []
    read_csv = layout.pd.read_csv
    monkeypatch.setattr(layout.pd, "read_csv", lambda *a, **k: parsed.append(read_csv(*a, **k)) or parsed[-1])
    table = layout.read_metadata(tmp_path, check_audio=False)
    assert table.to_dict("records") == [{"Path": "a.wav", "fold": 0, "family": "Winds", "instrument": "Fl", "library": "A"}]
    assert [list(t.columns) for t in parsed] == [["Path", "Fold", "Family", "Instrument (abbr.)", "Library"]]


def test_read_metadata_names_a_missing_csv(tmp_path):
    with pytest.raises(DataError, match=r"metadata file not found: .*TinySOL_metadata\.csv"):
        layout.read_metadata(tmp_path)


def test_write_metadata_round_trip(tmp_path):
    rows = [
        {"Path": "Winds/Flute/b.wav", "Fold": 1, "Family": "Winds", "Instrument (abbr.)": "Fl", "Library": "A"},
        {"Path": "Brass/Trombone/a.wav", "Fold": 0, "Family": "Brass", "Instrument (abbr.)": "Tbn", "Library": "B"},
    ]
    path = layout.write_metadata(tmp_path, rows)
    assert path.read_text(encoding="utf-8").splitlines()[0] == HEADER + ",Library"
    table = layout.read_metadata(tmp_path, check_audio=False)
    assert table.to_dict("records") == [
        {"Path": "Brass/Trombone/a.wav", "fold": 0, "family": "Brass", "instrument": "Tbn", "library": "B"},
        {"Path": "Winds/Flute/b.wav", "fold": 1, "family": "Winds", "instrument": "Fl", "library": "A"},
    ]
    with pytest.raises(DataError, match=r"got extra \['Colour'\]"):
        layout.write_metadata(tmp_path, [{**rows[0], "Colour": "red"}])


# --------------------------------------------------------------------------- index.csv


def make_index(n=4) -> pd.DataFrame:
    return pd.DataFrame({
        "window": [f"Fl/n{i}_0.wav" for i in range(n)],
        "Path": [f"Winds/Flute/n{i}.wav" for i in range(n)],
        "instrument": "Fl",
        "family": "Winds",
        "library": "A",
        "label": "Fl",
        "fold": [i % 5 for i in range(n)],
        "window_index": 0,
        "shard": 0,
        "row": list(range(n)),
    })


def test_index_round_trip(tmp_path):
    index = make_index()
    layout.write_index(tmp_path, index.iloc[:, ::-1])  # any column order in, the fixed order out
    back = layout.read_index(tmp_path)
    assert list(back.columns) == list(layout.INDEX_COLUMNS)
    pd.testing.assert_frame_equal(back, index, check_dtype=False)
    assert back["fold"].dtype.kind == "i" and back["window_index"].dtype.kind == "i"
    with pytest.raises(DataError, match=r"index rows lack column\(s\) \['label'\]"):
        layout.write_index(tmp_path, index.drop(columns="label"))


def _corrupt(index, column, row, value):
    index = index.astype(str)
    index.loc[row, column] = value
    return index


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda i: i.drop(columns="label"), r"missing column\(s\) \['label'\]"),
        (lambda i: _corrupt(i, "fold", 1, "5"), r"fold must be an integer in 0\.\.4, got e\.g\. '5'"),
        (lambda i: _corrupt(i, "fold", 1, "one"), r"got e\.g\. 'one'"),
        (lambda i: _corrupt(i, "window_index", 2, "-1"), r"window_index must be an integer >= 0, got e\.g\. '-1'"),
        (lambda i: _corrupt(i, "window", 1, "Fl/n0_0.wav"), r"window 'Fl/n0_0\.wav' is listed twice"),
        (lambda i: _corrupt(i, "window", 1, "../etc/passwd"), r"window '\.\./etc/passwd' is not a relative path"),
        (lambda i: _corrupt(i, "label", 3, ""), r"empty 'label' in 1 row\(s\)"),
        (lambda i: _corrupt(i, "library", 0, ""), r"empty 'library' in 1 row\(s\)"),
        (lambda i: _corrupt(i, "Path", 2, ""), r"empty 'Path' in 1 row\(s\)"),
        (lambda i: i.iloc[:0], r"no rows"),
        (lambda i: _corrupt(i, "shard", 1, "-1"), r"shard must be an integer >= 0, got e\.g\. '-1'"),
        (lambda i: _corrupt(i, "row", 1, "x"), r"row must be an integer >= 0, got e\.g\. 'x'"),
        (lambda i: _corrupt(i, "row", 2, "0"), r"window 'Fl/n2_0\.wav' has the shard and row of another window"),
    ],
    ids=["missing-column", "fold-5", "fold-text", "negative-position", "duplicate", "escape", "empty-label", "empty-library",
         "empty-path", "no-rows", "shard", "row", "same-place"],
)
def test_read_index_refuses_a_corrupt_index(tmp_path, change, match):
    change(make_index()).to_csv(tmp_path / layout.INDEX_FILE, index=False)
    with pytest.raises(DataError, match=match) as error:
        layout.read_index(tmp_path)
    assert str(error.value).startswith(str(tmp_path / layout.INDEX_FILE)) and "\n" not in str(error.value)


@pytest.mark.parametrize("seed", range(6))
def test_read_index_refuses_random_bytes(tmp_path, seed):
    (tmp_path / layout.INDEX_FILE).write_bytes(np.random.default_rng(seed).bytes(3000))
    with pytest.raises(DataError) as error:
        layout.read_index(tmp_path)
    assert str(error.value).startswith(str(tmp_path / layout.INDEX_FILE))


def test_read_index_says_how_to_make_it(tmp_path):
    with pytest.raises(DataError, match=r"run the clean stage first: dvc repro clean\) not found: .*index\.csv"):
        layout.read_index(tmp_path)


# --------------------------------------------------------------------------- predictions


def make_predictions() -> pd.DataFrame:
    return pd.DataFrame({
        "Path": ["Winds/Flute/a.wav", "Strings/Violin/b.wav", "Winds/Flute/c.wav"],
        "library": ["A", "B", "A"],
        "fold": [0, 1, 0],
        "set": ["test", "unseen", "test"],
        "label": ["Fl", "Vn", "Fl"],
        "predicted": ["Fl", "Fl", "Vn"],
        "n_windows": [2, 1, 3],
        "p_Fl": [0.9, 0.6, 1 / 3],
        "p_Vn": [0.1, 0.4, 2 / 3],
    })


def test_predictions_round_trip(tmp_path):
    path = layout.write_predictions(tmp_path / "p" / "conv1d.csv", make_predictions())
    table, labels = layout.read_predictions(path)
    assert labels == ["Fl", "Vn"]
    assert layout.probability_columns(labels) == ["p_Fl", "p_Vn"]
    pd.testing.assert_frame_equal(table, make_predictions())  # floats exactly, ints as ints


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.assign(p_Vn=[0.1, float("nan"), 0.5]), r"probability columns must hold finite numbers"),
        (lambda t: t.assign(p_Vn=["0.1", "high", "0.5"]), r"probability columns must hold finite numbers"),
        (lambda t: t.assign(p_Vn=[0.1, float("inf"), 0.5]), r"probability columns must hold finite numbers"),
        (lambda t: t.drop(columns="p_Vn"), r"label\(s\) \['Vn'\] have no p_<label> column"),
        (lambda t: t.drop(columns=["p_Vn", "p_Fl"]), r"no probability columns"),
        (lambda t: t.assign(fold=[0, 7, 0]), r"fold must be 0-4 and n_windows an integer >= 1"),
        (lambda t: t.assign(n_windows=[2, 0, 1]), r"fold must be 0-4 and n_windows an integer >= 1"),
        (lambda t: t.drop(columns="set"), r"missing column\(s\) \['set'\]"),
    ],
    ids=["nan", "text", "inf", "label-without-column", "no-columns", "fold", "n-windows", "missing-column"],
)
def test_read_predictions_refuses(tmp_path, change, match):
    path = tmp_path / "conv1d.csv"
    change(make_predictions()).to_csv(path, index=False)
    with pytest.raises(DataError, match=match) as error:
        layout.read_predictions(path)
    assert str(error.value).startswith(str(path))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.drop(columns="label"), r"predictions lack column\(s\) \['label'\]"),
        (lambda t: t.assign(p_Vn=[0.1, float("nan"), 0.5]), r"finite"),
        (lambda t: t.drop(columns="p_Vn"), r"\['Vn'\] have no p_<label> column"),
    ],
    ids=["missing-column", "nan", "label-without-column"],
)
def test_write_predictions_refuses_what_read_would(tmp_path, change, match):
    path = tmp_path / "conv1d.csv"
    with pytest.raises(DataError, match=match):
        layout.write_predictions(path, change(make_predictions()))
    assert not path.exists()


def test_read_predictions_names_a_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"predictions file not found: .*lstm\.csv"):
        layout.read_predictions(tmp_path / "lstm.csv")


@pytest.mark.parametrize("path", ["a.wav", "Winds/Flute/a b.wav", "x/y/z.flac"])
def test_safe_path_accepts(path):
    assert layout.safe_path(path)


@pytest.mark.parametrize("path", ["", "/a.wav", "../a.wav", "a/../../b.wav", "a\\b.wav", "a/.."])
def test_safe_path_refuses(path):
    assert not layout.safe_path(path)


# --------------------------------------------------------------------------- properties

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

#: One problem each: (how the row is spoiled, the cells) -> a row with exactly that problem.
SPOILERS = {
    "fold": lambda i, v: (f"n{i}.wav", v, "Winds", "Fl", "A"),
    "instrument": lambda i, v: (f"n{i}.wav", "0", "Winds", v, "A"),
    "family": lambda i, v: (f"n{i}.wav", "0", v, "Fl", "A"),
    "path": lambda i, v: (v.format(i), "0", "Winds", "Fl", "A"),
    "library": lambda i, v: (f"n{i}.wav", "0", "Winds", "Fl", v),
}
SPOILED_VALUES = {
    "fold": st.sampled_from(["5", "-1", "x", "1.5", "", "0x1", "nan"]),
    "instrument": st.sampled_from(["Guitar", "", "fl", "FL ", "Winds"]),
    "family": st.sampled_from(["Brass", "", "winds", "Strings"]),
    "path": st.sampled_from(["../n{}.wav", "/n{}.wav", "a\\n{}.wav", "a/../../n{}.wav", "x/../n{}/.."]),
    "library": st.sampled_from(["", " ", "../x", "a/b", "-y"]),
}
bad_row = st.sampled_from(sorted(SPOILERS)).flatmap(lambda kind: st.tuples(st.just(kind), SPOILED_VALUES[kind]))


@settings(max_examples=40)
@given(n_good=st.integers(0, 6), bad=st.lists(bad_row, max_size=8), seed=st.integers(0, 1000))
@example(n_good=3, bad=[("path", "a\\n{}.wav"), ("library", ""), ("fold", "nan"), ("family", "Strings")], seed=1)
@example(n_good=1, bad=[("path", "x/../n{}/.."), ("instrument", "FL "), ("library", " "), ("path", "/n{}.wav")], seed=2)
def test_read_metadata_names_every_bad_row_and_no_good_one(tmp_path_factory, n_good, bad, seed):
    good = [(f"Good/g{i}.wav", str(i % 5), "Brass", "Tbn", "B") for i in range(n_good)]
    spoiled = [SPOILERS[kind](100 + k, value) for k, (kind, value) in enumerate(bad)]
    rows = good + spoiled
    if not rows:
        return
    order = np.random.default_rng(seed).permutation(len(rows))
    raw = tmp_path_factory.mktemp("raw")
    pd.DataFrame([rows[i] for i in order], columns=[*HEADER.split(","), "Library"]).to_csv(raw / layout.METADATA_FILE, index=False)
    if not spoiled:
        table = layout.read_metadata(raw, check_audio=False)
        assert sorted(table["Path"]) == sorted(r[0] for r in good) and (table["library"] == "B").all()
        return
    with pytest.raises(DataError) as error:
        layout.read_metadata(raw, check_audio=False)
    message = str(error.value)
    assert message.startswith(f"{raw / layout.METADATA_FILE}: bad metadata: ") and "\n" not in message
    for row in spoiled:
        assert row[0] in message or repr(row[0]) in message, f"{row} not named"
    for row in good:
        assert row[0] not in message


# Mutation run (benchmarks/mutation.py): cases beside the tested ones that mutants survived.


def test_write_metadata_accepts_exactly_the_required_columns(tmp_path):
    rows = [{"Path": "Winds/Flute/b.wav", "Fold": 4, "Family": "Winds", "Instrument (abbr.)": "Fl"}]
    path = layout.write_metadata(tmp_path, rows)
    assert path.read_bytes() == b"Path,Fold,Family,Instrument (abbr.)\nWinds/Flute/b.wav,4,Winds,Fl\n"


def test_written_index_holds_exactly_its_columns_one_row_a_line(tmp_path):
    path = layout.write_index(tmp_path, make_index(2))
    assert path.read_bytes().decode().splitlines(keepends=True) == [
        ",".join(layout.INDEX_COLUMNS) + "\n",
        "Fl/n0_0.wav,Winds/Flute/n0.wav,Fl,Winds,A,Fl,0,0,0,0\n",
        "Fl/n1_0.wav,Winds/Flute/n1.wav,Fl,Winds,A,Fl,1,0,0,1\n",
    ]


def test_index_paths_with_commas_and_quotes_round_trip(tmp_path):
    index = make_index(2).assign(Path=['Winds/Flute/a, "loud".wav', "Winds/Flute/b.wav"])
    layout.write_index(tmp_path, index)
    pd.testing.assert_frame_equal(layout.read_index(tmp_path), index, check_dtype=False)


def test_an_index_interrupted_while_written_leaves_no_file(tmp_path):
    with pytest.raises(KeyboardInterrupt), layout.index_writer(tmp_path) as write_row:
        write_row(tuple(make_index(1).iloc[0]))
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_read_index_accepts_the_last_fold_and_late_windows(tmp_path):
    index = make_index(5).assign(window_index=[0, 7, 99, 1000, 10**9])
    index.to_csv(tmp_path / layout.INDEX_FILE, index=False)
    back = layout.read_index(tmp_path)
    assert back["fold"].tolist() == [0, 1, 2, 3, 4] and back["window_index"].tolist() == [0, 7, 99, 1000, 10**9]


def test_read_index_refuses_an_absurd_window_position_naming_the_file(tmp_path):
    _corrupt(make_index(), "window_index", 1, str(2 * 10**9)).to_csv(tmp_path / layout.INDEX_FILE, index=False)
    with pytest.raises(DataError) as error:
        layout.read_index(tmp_path)
    assert str(error.value) == (f"{tmp_path / layout.INDEX_FILE}: bad index: "
                                f"window_index must be an integer >= 0, got e.g. '{2 * 10**9}'")


def test_predictions_messages_name_the_file_and_what_is_wrong(tmp_path):
    path = tmp_path / "conv1d.csv"
    bad = make_predictions().assign(p_Vn=[0.1, float("nan"), 0.5])
    with pytest.raises(DataError) as error:
        layout.write_predictions(path, bad)
    assert str(error.value) == f"{path}: refusing to write predictions: probability columns must hold finite numbers"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError) as error:
        layout.read_predictions(path)
    assert str(error.value) == f"{path}: bad predictions: probability columns must hold finite numbers"


def test_predictions_accept_fold_4_and_many_windows_and_refuse_fold_5_or_absurd_counts(tmp_path):
    path = tmp_path / "conv1d.csv"
    good = make_predictions().assign(fold=[4, 0, 4], n_windows=[1, 100, 10**9])
    layout.write_predictions(path, good)
    table, _ = layout.read_predictions(path)
    assert table["fold"].tolist() == [4, 0, 4] and table["n_windows"].tolist() == [1, 100, 10**9]
    for change in ({"fold": [5, 0, 0]}, {"fold": [6, 0, 0]}, {"n_windows": [1, 2 * 10**9, 1]}):
        with pytest.raises(DataError, match="fold must be 0-4 and n_windows an integer >= 1"):
            layout.write_predictions(path, make_predictions().assign(**change))
        make_predictions().assign(**change).to_csv(path, index=False)
        with pytest.raises(DataError, match="fold must be 0-4 and n_windows an integer >= 1"):
            layout.read_predictions(path)


def test_written_predictions_have_no_row_numbers_and_read_back_as_floats(tmp_path):
    path = tmp_path / "conv1d.csv"
    certain = make_predictions().assign(p_Fl=[1, 0, 1], p_Vn=[0, 1, 0])  # whole numbers are still probabilities
    layout.write_predictions(path, certain)
    assert path.read_text().splitlines()[0] == "Path,library,fold,set,label,predicted,n_windows,p_Fl,p_Vn"
    table, _ = layout.read_predictions(path)
    assert table["p_Fl"].dtype == float and table["p_Vn"].dtype == float


@pytest.mark.parametrize(
    "card",
    [{"shape": [4, 3, 2, 1]}, {"settings": None, "shape": [4, 3, 2, 1]}, {"settings": {"features": {"n_mels": 2}}, "shape": [4, 3, 2, 1]}],
    ids=["no-settings", "null-settings", "other-settings"],
)
def test_features_whose_card_does_not_record_these_settings_are_refused(tmp_path, card):
    """A card that cannot show which settings made the array (an older or hand-made one) is not taken as current."""
    import json

    settings = {"clean": {"sample_rate": 16000}, "features": {"n_mels": 2}, "seed": 1}
    layout.write_features(tmp_path, make_index(), np.zeros((4, 3, 2, 1), np.float32), settings)
    assert len(layout.read_features(tmp_path, settings=settings)[1]) == 4
    (tmp_path / layout.FEATURES_CARD).write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(DataError, match=r"features\.json: the spectrograms were made with .*run the features stage first"):
        layout.read_features(tmp_path, settings=settings)


FEATURE_SETTINGS = {"clean": {"sample_rate": 16000}, "features": {"n_mels": 2}, "seed": 1}
HINT = "run the features stage first: dvc repro features"


def test_features_read_back_read_only_and_with_a_readable_card(tmp_path):
    spectrograms = np.arange(24, dtype=np.float32).reshape(4, 3, 2, 1)
    layout.write_features(tmp_path, make_index(), spectrograms, FEATURE_SETTINGS)
    card = (tmp_path / layout.FEATURES_CARD).read_text()
    assert card == '{\n  "settings": {\n    "clean": {\n      "sample_rate": 16000\n    },\n    "features": {\n      "n_mels": 2\n    },\n    "seed": 1\n  },\n  "shape": [\n    4,\n    3,\n    2,\n    1\n  ]\n}\n'
    index, back = layout.read_features(tmp_path, settings=FEATURE_SETTINGS)
    assert np.array_equal(back, spectrograms) and not back.flags.writeable  # memory-mapped, read-only
    layout.write_features(tmp_path, make_index(), spectrograms.astype(np.float64), FEATURE_SETTINGS)
    assert layout.read_features(tmp_path, settings=FEATURE_SETTINGS)[1].dtype == np.float32  # stored as float32


def test_features_problems_name_the_file_and_how_to_remake_it(tmp_path):
    with pytest.raises(DataError) as error:
        layout.write_features(tmp_path, make_index(), np.zeros((3, 3, 2, 1), np.float32), FEATURE_SETTINGS)
    assert str(error.value) == f"{tmp_path}: 3 spectrograms for 4 index rows"
    card, array = tmp_path / layout.FEATURES_CARD, tmp_path / layout.FEATURES_ARRAY
    with pytest.raises(DataError) as error:
        layout.read_features(tmp_path, settings=FEATURE_SETTINGS)
    assert str(error.value) == f"{card}: not found ({HINT})"
    layout.write_features(tmp_path, make_index(), np.zeros((4, 3, 2, 1), np.float32), FEATURE_SETTINGS)
    other = {**FEATURE_SETTINGS, "seed": 2}
    with pytest.raises(DataError) as error:
        layout.read_features(tmp_path, settings=other)
    assert str(error.value) == f"{card}: the spectrograms were made with {FEATURE_SETTINGS}, not {other}: {HINT}"
    array.unlink()
    with pytest.raises(DataError) as error:
        layout.read_features(tmp_path, settings=FEATURE_SETTINGS)
    assert str(error.value) == f"{array}: not found ({HINT})"
    np.save(array, np.zeros((4, 3, 2), np.float32))  # a 3-d array of the right length
    with pytest.raises(DataError, match=r"float32 array of shape \(4, 3, 2\), expected float32"):
        layout.read_features(tmp_path, settings=FEATURE_SETTINGS)
    np.save(array, np.zeros((4, 3, 2, 1), np.float64))  # the right shape, the wrong type
    with pytest.raises(DataError, match=r"float64 array of shape \(4, 3, 2, 1\), expected float32"):
        layout.read_features(tmp_path, settings=FEATURE_SETTINGS)
    np.save(array, np.zeros((4, 5, 2, 1), np.float32))  # the card says (4, 3, 2, 1)
    with pytest.raises(DataError) as error:
        layout.read_features(tmp_path, settings=FEATURE_SETTINGS)
    assert str(error.value) == f"{array}: shape [4, 5, 2, 1], its card says [4, 3, 2, 1]: {HINT}"


def test_a_pickled_spectrogram_file_is_refused_not_unpickled(tmp_path):
    layout.write_features(tmp_path, make_index(), np.zeros((4, 3, 2, 1), np.float32), FEATURE_SETTINGS)
    np.save(tmp_path / layout.FEATURES_ARRAY, np.array([{"x": 1}] * 4, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=rf"not a spectrogram array \(.*\): {re.escape(HINT)}"):
        layout.read_features(tmp_path, settings=FEATURE_SETTINGS)


@pytest.mark.parametrize(("card", "expected"), [("{", "unreadable (Expecting property name"), ("[1, 2]", "made with None, not")])
def test_a_broken_features_card_is_named(tmp_path, card, expected):
    layout.write_features(tmp_path, make_index(), np.zeros((4, 3, 2, 1), np.float32), FEATURE_SETTINGS)
    (tmp_path / layout.FEATURES_CARD).write_text(card)
    with pytest.raises(DataError) as error:
        layout.read_features(tmp_path, settings=FEATURE_SETTINGS)
    message = str(error.value)
    assert message.startswith(f"{tmp_path / layout.FEATURES_CARD}: ") and expected in message and message.endswith(HINT)


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "not found"), ("{", "not valid JSON"), ("[1]", "expected a JSON object, got list"), (b"\xff\xfe", "not readable JSON")],
)
def test_read_json_names_the_file(tmp_path, content, match):
    path = tmp_path / "r.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=rf"r\.json: {match}"):
        layout.read_json(path)
    if content == "[1]":
        assert layout.read_json(path, expect=list) == [1]  # an array where one is expected (dvc exp show --json)


def test_write_metadata_takes_a_table_names_a_missing_column_and_writes_no_index(tmp_path):
    table = pd.DataFrame({"Library": ["A"], "Instrument (abbr.)": ["Fl"], "Path": ["Winds/Flute/x.wav"], "Fold": [0],
                          "Family": ["Winds"], "Mic": ["near"]})
    path = layout.write_metadata(tmp_path, table, other_columns=True)
    assert path.read_bytes() == b"Path,Fold,Family,Instrument (abbr.),Library,Mic\nWinds/Flute/x.wav,0,Winds,Fl,A,near\n"
    with pytest.raises(DataError, match=r"^metadata lacks column\(s\) \['Fold'\]$"):
        layout.write_metadata(tmp_path, table.drop(columns="Fold"), other_columns=True)


def test_parse_json_says_which_kind_it_expected():
    with pytest.raises(DataError, match=r"^x: expected a JSON array, got dict$"):
        layout.parse_json("{}", name="x", expect=list)
    with pytest.raises(DataError, match=r"^x: expected a JSON object, got list$"):
        layout.parse_json("[]", name="x")


def test_a_predicted_label_that_has_no_probability_column_is_refused(tmp_path):
    """A note predicted as a class the table has no p_<label> for (only the prediction names it) is
    a table from two different models: refused on write and on read, naming the label."""
    table = make_predictions().assign(predicted=["Fl", "Ob", "Vn"])
    with pytest.raises(DataError, match=r"\['Ob'\] have no p_<label> column"):
        layout.write_predictions(tmp_path / "w.csv", table)
    assert not (tmp_path / "w.csv").exists()
    table.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(DataError, match=r"\['Ob'\] have no p_<label> column"):
        layout.read_predictions(tmp_path / "r.csv")


# Hostile mutants, round 5 (benchmarks/hostile_mutants/round5): cases beside the tested ones.


def test_a_shard_is_filled_up_to_its_size_exactly(tmp_path):
    """Room for 3 windows: notes of 2 and 1 windows fill shard 0 exactly, the next note opens shard 1."""
    writer = layout.ShardWriter(tmp_path, n_samples=4, shard_bytes=3 * 2 * 4)
    pcm = np.arange(24, dtype=np.int16).reshape(6, 4)
    assert [writer.add(pcm[:2]), writer.add(pcm[2:3]), writer.add(pcm[3:])] == [(0, 0), (0, 2), (1, 0)]
    writer.flush()
    assert [np.load(layout.shard_path(tmp_path, s)).tolist() for s in (0, 1)] == [pcm[:3].tolist(), pcm[3:].tolist()]


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_a_fortran_order_array_is_refused_not_read_scrambled(tmp_path):
    """np.save of a transposed array stores it column by column: its rows are not where a C-order reader looks."""
    rows = np.arange(12, dtype=np.int16).reshape(3, 4)
    np.save(tmp_path / "f.npy", np.asfortranarray(rows))
    with pytest.raises(DataError, match=r"f\.npy: not a C-order numeric array with rows"):
        layout.NpyRows(tmp_path / "f.npy")
    np.save(tmp_path / "c.npy", rows)
    np.testing.assert_array_equal(layout.NpyRows(tmp_path / "c.npy").read([2, 0]), rows[[2, 0]])


# Mutation run after write_index went through index_writer (benchmarks/mutation.py): what its survivors asked for.


def test_shard_and_row_read_back_as_integers_up_to_a_billion_and_no_further(tmp_path):
    index = make_index(3).assign(shard=[0, 120, 120], row=[999, 5, 10**9])
    index.to_csv(tmp_path / layout.INDEX_FILE, index=False)
    back = layout.read_index(tmp_path)
    assert back["shard"].tolist() == [0, 120, 120] and back["row"].tolist() == [999, 5, 10**9]
    assert back["shard"].dtype == np.int64 and back["row"].dtype == np.int64
    for column in ("shard", "row"):
        _corrupt(make_index(), column, 1, str(10**9 + 1)).to_csv(tmp_path / layout.INDEX_FILE, index=False)
        with pytest.raises(DataError) as error:
            layout.read_index(tmp_path)
        assert str(error.value) == (f"{tmp_path / layout.INDEX_FILE}: bad index: "
                                    f"{column} must be an integer >= 0, got e.g. '{10**9 + 1}'")


def test_a_shard_too_small_for_two_windows_holds_one_note_each(tmp_path):
    """shard_bytes of one window: every note opens a shard of its own (a longer note still fits whole)."""
    writer = layout.ShardWriter(tmp_path, n_samples=4, shard_bytes=2 * 4)
    pcm = np.arange(20, dtype=np.int16).reshape(5, 4)
    assert [writer.add(pcm[:1]), writer.add(pcm[1:2]), writer.add(pcm[2:])] == [(0, 0), (1, 0), (2, 0)]
    writer.flush()
    assert [len(np.load(layout.shard_path(tmp_path, s))) for s in (0, 1, 2)] == [1, 1, 3]


def test_shard_writer_makes_its_folders_and_takes_one_that_is_there(tmp_path):
    for folder in (tmp_path / "new" / "clean", tmp_path / "new" / "clean"):  # missing, then with shards/ already
        writer = layout.ShardWriter(folder, n_samples=2)
        writer.add(np.array([[1, -2]], np.int16))
        writer.flush()
        assert np.load(layout.shard_path(folder, 0)).tolist() == [[1, -2]]


@pytest.mark.parametrize("given", [np.array([[1, -2, 300]], ">i2"), np.array([[1, -2, 300]], np.int64), [[1, -2, 300]]],
                         ids=["big-endian", "int64", "list"])
def test_shard_writer_stores_any_integer_windows_as_little_endian_16_bit(tmp_path, given):
    writer = layout.ShardWriter(tmp_path, n_samples=3)
    writer.add(given)
    writer.flush()
    back = np.load(layout.shard_path(tmp_path, 0))
    assert back.dtype == np.dtype("<i2") and back.tolist() == [[1, -2, 300]]


@pytest.mark.parametrize("shape", [(2, 5), (4,), (1, 2, 4)])
def test_shard_writer_refuses_windows_of_another_shape_naming_it(tmp_path, shape):
    writer = layout.ShardWriter(tmp_path, n_samples=4)
    with pytest.raises(DataError) as error:
        writer.add(np.zeros(shape, np.int16))
    assert str(error.value) == f"windows must have shape (k, 4), got {shape}"


def test_features_written_batch_by_batch_read_back_whole_as_float32(tmp_path):
    spectrograms = np.linspace(-1, 1, 24).reshape(4, 3, 2, 1)  # float64 in, float32 stored
    batches = (spectrograms[i:i + 2] for i in (0, 2))
    layout.write_features(tmp_path, make_index(), batches, FEATURE_SETTINGS, row_shape=(3, 2, 1))
    back = layout.read_features(tmp_path, settings=FEATURE_SETTINGS)[1]
    assert back.dtype == np.float32 and np.array_equal(back, spectrograms.astype(np.float32))
    layout.write_features(tmp_path, make_index(), spectrograms, FEATURE_SETTINGS)  # the whole float64 array at once
    assert np.array_equal(layout.read_features(tmp_path, settings=FEATURE_SETTINGS)[1], spectrograms.astype(np.float32))


def test_feature_batches_are_refused_as_soon_as_one_does_not_fit(tmp_path):
    """A batch of another row shape, or one past the index's rows: refused at that batch, naming it; no later
    batch is asked for, and batches without row_shape are refused before any."""
    pulled = []

    def batches(*shapes):
        for shape in shapes:
            pulled.append(shape)
            yield np.zeros(shape, np.float32)

    with pytest.raises(DataError) as error:
        layout.write_features(tmp_path, make_index(), batches((2, 3, 2, 1), (2, 3, 3, 1), (2, 3, 2, 1)), FEATURE_SETTINGS,
                              row_shape=(3, 2, 1))
    assert str(error.value) == f"{tmp_path}: spectrograms of shape (3, 3, 1) after 2 rows, expected 4 of shape (3, 2, 1)"
    assert len(pulled) == 2
    pulled.clear()
    with pytest.raises(DataError) as error:
        layout.write_features(tmp_path, make_index(), batches((3, 3, 2, 1), (3, 3, 2, 1), (1, 3, 2, 1)), FEATURE_SETTINGS,
                              row_shape=(3, 2, 1))
    assert str(error.value) == f"{tmp_path}: spectrograms of shape (3, 2, 1) after 3 rows, expected 4 of shape (3, 2, 1)"
    assert len(pulled) == 2
    with pytest.raises(DataError) as error:
        layout.write_features(tmp_path, make_index(), batches((4, 3, 2, 1)), FEATURE_SETTINGS)
    assert str(error.value) == f"{tmp_path}: batches of spectrograms need row_shape"
    assert list(tmp_path.iterdir()) == []  # nothing written by any of them


# Mutation run of layout.py after round 6 (benchmarks/mutation.py): the positioned reader NpyRows,
# which training, predict and the reports read every window and spectrogram through.


def _npy(path, array, version=None):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=version)
    return path


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_npy_rows_reads_any_rows_in_any_order_with_gaps_and_repeats(tmp_path, version):
    """Gaps of one and two rows, a step back, repeats and the last row: each row where np.load puts it."""
    array = np.arange(8 * 3 * 2, dtype="<i2").reshape(8, 3, 2) * 97 - 900
    rows = layout.NpyRows(_npy(tmp_path / "a.npy", array, version))
    assert len(rows) == 8 and rows.row_shape == (3, 2)
    wanted = [0, 2, 3, 7, 7, 1, 4, 5, 6, 4]
    np.testing.assert_array_equal(rows.read(wanted), array[wanted])
    out = np.zeros((3, 3, 2), "<i2")
    assert rows.read(np.array([5, 3, 1], np.int32), out=out) is out
    np.testing.assert_array_equal(out, array[[5, 3, 1]])
    assert rows.read([]).shape == (0, 3, 2)


@pytest.mark.parametrize(("array", "why"), [(np.array([{"a": 1}], dtype=object), "object"), (np.array(3.0), "0-d")])
def test_npy_rows_refuses_object_and_row_less_arrays(tmp_path, array, why):
    path = _npy(tmp_path / f"{why}.npy", array)
    with pytest.raises(DataError) as error:
        layout.NpyRows(path)
    assert str(error.value) == f"{path}: not a C-order numeric array with rows"


def test_npy_rows_names_a_file_that_is_not_npy_and_one_cut_short(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"not an array at all")
    with pytest.raises(DataError, match=r"^.*x\.npy: not a \.npy array \(.+\)$"):
        layout.NpyRows(tmp_path / "x.npy")
    path = _npy(tmp_path / "a.npy", np.ones((3, 4), "<f4"))
    whole = path.read_bytes()
    path.write_bytes(whole[:-1])
    with pytest.raises(DataError) as error:
        layout.NpyRows(path)
    assert str(error.value) == f"{path}: truncated ({len(whole) - 1} bytes for shape (3, 4))"
    path.write_bytes(whole)
    assert len(layout.NpyRows(path)) == 3


def test_npy_rows_refuses_a_row_outside_naming_it(tmp_path):
    rows = layout.NpyRows(_npy(tmp_path / "a.npy", np.ones((3, 4), "<f4")))
    for asked, named in (([-1], -1), ([3], 3), ([0, 3], 3), ([0, 5, -2], 5), ([2, -4], -4)):
        with pytest.raises(DataError) as error:
            rows.read(asked)
        assert str(error.value) == f"{tmp_path / 'a.npy'}: row {named} is outside its 3 rows"
    assert rows.read([2]).shape == (1, 4)


def test_npy_rows_says_so_when_the_file_shrank_under_it(tmp_path):
    path = _npy(tmp_path / "a.npy", np.ones((4, 8), "<i2"))
    rows = layout.NpyRows(path)
    path.write_bytes(path.read_bytes()[:-20])  # the same file, cut while open
    with pytest.raises(DataError) as error:
        rows.read([2, 3])
    assert str(error.value) == f"{path}: short read (12 of 32 bytes)"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_npy_rows_closes_its_file_when_dropped_and_a_refused_file_leaves_nothing(tmp_path, monkeypatch):
    path = _npy(tmp_path / "a.npy", np.ones((3, 4), "<f4"))
    gc.collect()  # files other tests left to the collector
    before = _open_fds()
    rows = layout.NpyRows(path)
    assert _open_fds() == before + 1
    del rows
    gc.collect()
    assert _open_fds() == before
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError):
        layout.NpyRows(path)
    gc.collect()
    assert _open_fds() == before and unraisable == []  # no "Exception ignored in NpyRows.__del__"
