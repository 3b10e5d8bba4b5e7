"""Combined sources (``data.source: [soundfont, local]``): one raw set, each note with its library and fold."""

import re
from pathlib import Path

import pandas as pd
import pytest
from synthetic import RAW_ROWS, TINY_SOUNDFONT, make_raw_dir, soundfont_settings

from instrclf import layout, settings, sources
from instrclf.errors import DataError, ParameterError
from instrclf.sources.soundfont import libraries, render
from instrclf.sources.soundfont.plan import plan

REPO = Path(__file__).resolve().parents[1]
LIBRARIES = TINY_SOUNDFONT["libraries"]

pytestmark = pytest.mark.skipif(
    any(libraries.problem(libraries.KNOWN[name][0]) for name in LIBRARIES),
    reason="needs the Debian SoundFonts (make test installs them)",
)


def data_settings(source, own) -> settings.DataSettings:
    params = settings.load(REPO / "params.yaml")
    params["data"].update(source=source, local={"path": str(own)}, soundfont=dict(TINY_SOUNDFONT))
    return settings.section(params, settings.DataSettings)


def audio_bytes(raw: Path) -> dict:
    return {p.relative_to(raw / "audio").as_posix(): p.read_bytes() for p in sorted((raw / "audio").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The tiny render on its own, through the download stage's code path."""
    out = tmp_path_factory.mktemp("alone") / "raw"
    sources.fetch(data_settings("soundfont", REPO / "data" / "own"), seed=7, out_dir=out)
    return out


def test_one_soundfont_source_writes_exactly_what_the_renderer_writes(alone, tmp_path):
    """The default source is untouched by the combiner: same metadata bytes, same audio bytes."""
    render.render(tmp_path, seed=7, settings=soundfont_settings(), progress=False)
    assert (alone / layout.METADATA_FILE).read_bytes() == (tmp_path / layout.METADATA_FILE).read_bytes()
    assert audio_bytes(alone) == audio_bytes(tmp_path)


@pytest.mark.parametrize("order", [["soundfont", "local"], ["local", "soundfont"]])
def test_soundfont_and_local_make_one_raw_set_keeping_libraries_and_folds(alone, tmp_path, order):
    own = make_raw_dir(tmp_path / "own")
    figures = sources.fetch(data_settings(order, own), seed=7, out_dir=tmp_path / "raw")
    raw = tmp_path / "raw"
    meta = layout.read_metadata(raw, check_audio=True)
    rendered = layout.read_metadata(alone)
    assert sorted(meta["library"].unique()) == sorted([*LIBRARIES, "own"])
    assert figures["sources"] == 2 and figures["libraries"] == 3 and figures["rows"] == len(rendered) + len(RAW_ROWS)
    mine = meta[meta["library"] == "own"].set_index("Path")
    assert {p: mine.loc[p, "fold"] for p, *_ in RAW_ROWS} == {p: f for p, f, *_ in RAW_ROWS}  # the local set's folds
    theirs = meta[meta["library"] != "own"].reset_index(drop=True)
    pd.testing.assert_frame_equal(theirs, rendered)  # every rendered note, fold and library as alone
    both = audio_bytes(raw)
    assert {p: both[p] for p in audio_bytes(alone)} == audio_bytes(alone)
    assert all(both[p] == (own / "audio" / p).read_bytes() for p, *_ in RAW_ROWS)
    assert not [p.name for p in raw.iterdir() if p.name.startswith(".part")]  # no scratch folders left


def test_the_order_of_the_sources_does_not_change_the_raw_set(tmp_path):
    own = make_raw_dir(tmp_path / "own")
    for order in (["soundfont", "local"], ["local", "soundfont"]):
        sources.fetch(data_settings(order, own), seed=7, out_dir=tmp_path / "-".join(order))
    first, second = tmp_path / "soundfont-local", tmp_path / "local-soundfont"
    assert (first / layout.METADATA_FILE).read_bytes() == (second / layout.METADATA_FILE).read_bytes()
    assert audio_bytes(first) == audio_bytes(second)


def test_a_library_column_of_the_local_set_is_kept(tmp_path):
    own = make_raw_dir(tmp_path / "own")
    table = pd.read_csv(own / layout.METADATA_FILE, dtype=str)
    table["Library"] = ["room", "room", "studio"]
    table.to_csv(own / layout.METADATA_FILE, index=False)
    sources.fetch(data_settings(["soundfont", "local"], own), seed=7, out_dir=tmp_path / "raw")
    meta = layout.read_metadata(tmp_path / "raw").set_index("Path")
    assert [meta.loc[p, "library"] for p, *_ in RAW_ROWS] == ["room", "room", "studio"]


def test_two_sources_giving_one_path_are_refused_naming_both_and_the_path(tmp_path):
    taken = plan(seed=7, n_instances=len(LIBRARIES), max_notes_per_instrument=TINY_SOUNDFONT["max_notes_per_instrument"])
    path = next(n.path for n in taken if n.instance == 0 and n.abbr == "Fl")  # a flute TimGM6mb plays
    own = make_raw_dir(tmp_path / "own", rows=((path, 0, "Winds", "Fl"),))
    with pytest.raises(DataError) as info:
        sources.fetch(data_settings(["soundfont", "local"], own), seed=7, out_dir=tmp_path / "raw")
    message = str(info.value)
    assert message.startswith("data.source: soundfont and local both give audio/" + path) and "\n" not in message
    assert not (tmp_path / "raw").exists()  # nothing written


def test_a_library_from_two_sources_is_refused(tmp_path):
    own = make_raw_dir(tmp_path / "own")
    table = pd.read_csv(own / layout.METADATA_FILE, dtype=str)
    table["Library"] = LIBRARIES[0]
    table.to_csv(own / layout.METADATA_FILE, index=False)
    with pytest.raises(DataError, match=rf"^data.source: soundfont and local both give notes of library '{LIBRARIES[0]}'"):
        sources.fetch(data_settings(["soundfont", "local"], own), seed=7, out_dir=tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_a_bad_local_folder_fails_before_anything_is_rendered(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "render", lambda *a, **k: pytest.fail("rendered before the local folder was checked"))
    with pytest.raises(DataError, match="data.local.path: .* does not exist"):
        sources.fetch(data_settings(["soundfont", "local"], tmp_path / "nowhere"), seed=7, out_dir=tmp_path / "raw")


def test_a_local_set_alone_gets_the_library_own(tmp_path):
    own = make_raw_dir(tmp_path / "own")
    sources.fetch(data_settings("local", own), seed=7, out_dir=tmp_path / "raw")
    assert set(layout.read_metadata(tmp_path / "raw")["library"]) == {"own"}


@pytest.mark.parametrize(("value", "expected"), [("local", ("local",)), (["soundfont", "local"], ("soundfont", "local")), (["tinysol"], ("tinysol",))])
def test_data_source_is_one_name_or_a_list(value, expected):
    params = settings.load(REPO / "params.yaml")
    params["data"]["source"] = value
    assert settings.section(params, settings.DataSettings).source == expected


@pytest.mark.parametrize(("value", "message"), [
    ([], "data.source = []: must be 'soundfont', 'tinysol' or 'local', or a non-empty list of them"),
    (["soundfont", "zenodo"], "data.source = ['soundfont', 'zenodo']: unknown source(s) ['zenodo']"),
    (["local", "local"], "data.source = ['local', 'local']: each source may be listed once"),
    ({"a": 1}, "data.source: must be 'soundfont', 'tinysol' or 'local'"),
])
def test_a_bad_source_list_is_refused_in_one_line(value, message):
    params = settings.load(REPO / "params.yaml")
    params["data"]["source"] = value
    with pytest.raises(settings.ParameterError) as info:
        settings.section(params, settings.DataSettings)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_tinysol_and_local_combine_with_the_libraries_tinysol_and_own(tmp_path, monkeypatch):
    """The Zenodo set (here a file:// mirror, no network) is library TinySOL; folds come from each metadata."""
    import hashlib
    import tarfile

    monkeypatch.setenv("INSTRCLF_CACHE", str(tmp_path / "cache"))  # never the user's download cache

    zenodo_rows = (("Strings/Cello/ordinario/Vc-ord-C3-ff-4c-T1.wav", 2, "Strings", "Vc"), ("Winds/Oboe/ordinario/Ob-ord-A4-pp-N-T1.wav", 3, "Winds", "Ob"))
    made = make_raw_dir(tmp_path / "made", rows=zenodo_rows)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "TinySOL.tar.gz", "w:gz") as tar:
        for path, *_ in zenodo_rows:
            tar.add(made / "audio" / path, arcname=f"TinySOL/{path}")
    (mirror / layout.METADATA_FILE).write_bytes((made / layout.METADATA_FILE).read_bytes())
    md5 = {name: hashlib.md5((mirror / name).read_bytes()).hexdigest() for name in ("TinySOL.tar.gz", layout.METADATA_FILE)}
    own = make_raw_dir(tmp_path / "own")
    params = settings.load(REPO / "params.yaml")
    params["data"].update(source=["tinysol", "local"], local={"path": str(own)}, tinysol={"base_url": mirror.as_uri(), "md5": md5})
    data = settings.section(params, settings.DataSettings)
    figures = sources.fetch(data, seed=7, out_dir=tmp_path / "raw")
    meta = layout.read_metadata(tmp_path / "raw", check_audio=True).set_index("Path")
    assert figures["sources"] == 2 and figures["rows"] == len(zenodo_rows) + len(RAW_ROWS)
    assert {p: (meta.loc[p, "library"], meta.loc[p, "fold"]) for p, f, *_ in zenodo_rows + RAW_ROWS} == {
        **{p: ("TinySOL", f) for p, f, *_ in zenodo_rows}, **{p: ("own", f) for p, f, *_ in RAW_ROWS}
    }


# Mutation run of sources/__init__.py (benchmarks/mutation.py): what its survivors asked for.


def test_a_column_of_the_users_own_is_kept_alone_and_combined_and_empty_for_the_other_source(tmp_path):
    """A 'Performer' column of the local set reaches data/raw's metadata whether the set is alone (where the
    library 'own' is added) or combined (where the rendered notes have no performer: an empty cell)."""
    own = make_raw_dir(tmp_path / "own")
    table = pd.read_csv(own / layout.METADATA_FILE, dtype=str)
    table["Performer"] = ["Ann", "Bo", "Cy"]
    table.to_csv(own / layout.METADATA_FILE, index=False)
    for source in ("local", ["soundfont", "local"]):
        out = tmp_path / "-".join(source if isinstance(source, list) else [source])
        sources.fetch(data_settings(source, own), seed=7, out_dir=out)
        written = pd.read_csv(out / layout.METADATA_FILE, dtype=str, keep_default_na=False).set_index("Path")
        assert [written.loc[p, "Performer"] for p, *_ in RAW_ROWS] == ["Ann", "Bo", "Cy"], source
        assert set(written.loc[~written.index.isin([p for p, *_ in RAW_ROWS]), "Performer"]) <= {""}
    assert len(written) > len(RAW_ROWS)  # the combined set had rendered notes


def test_a_missing_soundfont_library_fails_before_the_local_set_is_copied(tmp_path, monkeypatch):
    """Every source is checked before any works: a library file that is not there stops the run at once."""
    from instrclf.sources import local

    own = make_raw_dir(tmp_path / "own")
    monkeypatch.setattr(local, "copy", lambda *a, **k: pytest.fail("copied before the SoundFont libraries were checked"))
    params = settings.load(REPO / "params.yaml")
    params["data"].update(source=["local", "soundfont"], local={"path": str(own)},
                          soundfont=dict(TINY_SOUNDFONT, libraries=[str(tmp_path / "gone.sf2")]))
    data = settings.section(params, settings.DataSettings)
    with pytest.raises((DataError, ParameterError), match="gone.sf2"):
        sources.fetch(data, seed=7, out_dir=tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_a_source_that_leaves_a_listed_recording_out_is_refused_and_nothing_is_replaced(tmp_path, monkeypatch):
    """The raw set is checked file by file before it replaces the old one: a metadata row without its audio fails."""
    own = make_raw_dir(tmp_path / "own")
    sources.fetch(data_settings("local", own), seed=7, out_dir=tmp_path / "raw")
    before = audio_bytes(tmp_path / "raw")

    def leaves_one_out(folder, raw):
        figures = real_copy(folder, raw)
        (Path(raw) / "audio" / RAW_ROWS[0][0]).unlink()
        return figures

    from instrclf.sources import local

    real_copy = local.copy
    monkeypatch.setattr(local, "copy", leaves_one_out)
    with pytest.raises(DataError, match=re.escape(RAW_ROWS[0][0])):
        sources.fetch(data_settings("local", own), seed=7, out_dir=tmp_path / "raw")
    assert audio_bytes(tmp_path / "raw") == before
