"""Tests of the library registry: names and paths, and missing files failing before any work."""

from pathlib import Path

import pytest
from synthetic import TINY_PARAMS, soundfont_settings

from instrclf import settings, sources
from instrclf.errors import DataError, ParameterError
from instrclf.sources.soundfont import libraries, render

REPO = Path(__file__).resolve().parents[1]


def soundfont_file(path) -> Path:
    """A file with a SoundFont's RIFF header (enough for the checks; not playable)."""
    path = Path(path)
    path.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")
    return path


def data_settings(**soundfont) -> settings.DataSettings:
    params = settings.load(REPO / "params.yaml")
    params["data"]["source"] = "soundfont"
    params["data"]["soundfont"] = soundfont_settings(**soundfont).model_dump()
    return settings.section(params, settings.DataSettings)


def test_known_names_map_to_debian_files_and_packages():
    found = libraries.resolve(["TimGM6mb", "FluidR3_GM", "sf_GMbank", "MuseScore_General_Lite"], check=False)
    assert [(lib.name, str(lib.path), lib.package) for lib in found] == [
        ("TimGM6mb", "/usr/share/sounds/sf2/TimGM6mb.sf2", "timgm6mb-soundfont"),
        ("FluidR3_GM", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm"),
        ("sf_GMbank", "/usr/share/sounds/sf2/sf_GMbank.sf2", "csound-soundfont"),
        ("MuseScore_General_Lite", "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "musescore-general-soundfont-small"),
    ]


def test_a_path_is_its_own_library_named_by_its_stem(tmp_path):
    font = soundfont_file(tmp_path / "My Strings.sf3")
    (lib,) = libraries.resolve([str(font)])
    assert (lib.name, lib.path, lib.package) == ("My Strings", font, None)


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (["TimGM6"], r"libraries\[0\] = 'TimGM6': not a known library"),
        (["TimGM6mb", "font.txt"], r"libraries\[1\] = 'font.txt': not a known library.*\.sf2/\.sf3"),
        (["TimGM6mb", "/elsewhere/TimGM6mb.sf2"], r"libraries\[1\].*'TimGM6mb' is already used by .*libraries\[0\]"),
        (["/x/-bad.sf2"], r"libraries\[0\].*plain name"),
    ],
    ids=["unknown-name", "not-a-soundfont", "same-name", "bad-stem"],
)
def test_bad_entries_are_named(entries, expected):
    with pytest.raises(ParameterError, match=expected):
        libraries.resolve(entries, check=False)


def test_every_missing_file_is_named_with_its_package(tmp_path, monkeypatch):
    monkeypatch.setitem(libraries.KNOWN, "FluidR3_GM", (tmp_path / "FluidR3_GM.sf2", "fluid-soundfont-gm"))
    monkeypatch.setitem(libraries.KNOWN, "sf_GMbank", (tmp_path / "sf_GMbank.sf2", "csound-soundfont"))
    mine = tmp_path / "mine.sf2"
    with pytest.raises(DataError) as info:
        libraries.resolve(["FluidR3_GM", "sf_GMbank", str(mine)])
    message = str(info.value)
    assert "3 SoundFont file(s)" in message and "\n" not in message
    assert f"{tmp_path / 'FluidR3_GM.sf2'} is missing" in message and "apt-get install fluid-soundfont-gm" in message
    assert f"{tmp_path / 'sf_GMbank.sf2'} is missing" in message and "apt-get install csound-soundfont" in message
    assert f"{mine} is missing" in message


def test_a_file_that_is_not_a_soundfont_is_refused(tmp_path):
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    with pytest.raises(DataError, match="fake.sf2 is not a SoundFont"):
        libraries.resolve([str(fake)])


def test_render_fails_before_writing_anything_when_a_library_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(libraries.KNOWN, "sf_GMbank", (tmp_path / "gone.sf2", "csound-soundfont"))
    out = tmp_path / "out"
    with pytest.raises(DataError, match="gone.sf2 is missing.*apt-get install csound-soundfont"):
        render.render(out, seed=1, settings=soundfont_settings(libraries=["TimGM6mb", "sf_GMbank"]))
    assert not out.exists()


def test_fetch_fails_before_touching_the_raw_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(libraries.KNOWN, "FluidR3_GM", (tmp_path / "gone.sf2", "fluid-soundfont-gm"))
    monkeypatch.setattr(render, "render", lambda *a, **k: pytest.fail("rendered despite a missing library"))
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "keep.txt").write_text("old run")
    with pytest.raises(DataError, match="apt-get install fluid-soundfont-gm"):
        sources.fetch(data_settings(libraries=["FluidR3_GM"]), seed=TINY_PARAMS["seed"], out_dir=raw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no temporary folder either
    assert [p.name for p in raw.iterdir()] == ["keep.txt"]


# --- what mutation testing asked for -------------------------------------------------------------


def test_an_unknown_entry_is_named_with_every_known_library():
    with pytest.raises(ParameterError) as info:
        libraries.library("strings.txt")  # its position defaults to the first
    assert str(info.value) == (
        "data.soundfont.libraries[0] = 'strings.txt': not a known library (TimGM6mb, FluidR3_GM, sf_GMbank, "
        "MuseScore_General_Lite, OPL3_FM, freepats) nor a path to a .sf2/.sf3/.cfg file")


def test_the_problems_of_several_files_are_one_line_separated_by_semicolons(tmp_path):
    one, two = tmp_path / "one.sf2", tmp_path / "two.sf3"
    with pytest.raises(DataError) as info:
        libraries.resolve([str(one), str(two)])
    assert str(info.value) == (
        "2 SoundFont file(s) of data.soundfont.libraries unusable, nothing rendered: "
        f"{one} is missing (library one, a path in data.soundfont.libraries); "
        f"{two} is missing (library two, a path in data.soundfont.libraries)")


@pytest.mark.parametrize("name", ["patches.cfg", "PATCHES.CFG"])
def test_a_patch_config_is_checked_as_a_config_not_as_a_soundfont(tmp_path, name):
    cfg = tmp_path / name
    cfg.write_text("bank 1\n0 piano.pat\n")  # a program, but not in bank 0
    assert libraries.problem(cfg) == "maps no program in bank 0 (not a TiMidity++ patch config)"


def test_what_is_wrong_with_a_file_is_said_plainly(tmp_path):
    (tmp_path / "folder.sf2").mkdir()
    assert libraries.problem(tmp_path / "folder.sf2") == "is a folder, not a file"
    (tmp_path / "file").write_text("x")
    assert libraries.problem(tmp_path / "file" / "under.sf2") == "cannot be read (Not a directory)"
    for head in (b"RIFX\x04\x00\x00\x00sfbk", b"RIFF\x04\x00\x00\x00sfb", b"RIFF\x04\x00\x00\x00WAVE"):
        (tmp_path / "bad.sf2").write_bytes(head)
        assert libraries.problem(tmp_path / "bad.sf2") == "is not a SoundFont (no RIFF sfbk header)", head
    assert libraries.problem(soundfont_file(tmp_path / "good.sf2")) is None


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


@pytest.mark.parametrize("name", ["Piano.SF2", "Strings.Sf3"])
def test_a_soundfont_path_with_a_capital_suffix_is_a_library(tmp_path, name):
    """Windows tools write .SF2: the suffix is matched whatever its case, as problem() matches .CFG."""
    font = soundfont_file(tmp_path / name)
    (lib,) = libraries.resolve([str(font)])
    assert (lib.name, lib.path) == (Path(name).stem, font)


# Hostile mutants, round 7 (benchmarks/hostile_mutants/round7): cases beside the tested ones.


def test_a_path_from_home_is_expanded(tmp_path, monkeypatch):
    """``~/fonts/Mine.sf2`` in params.yaml is the file under the user's home, found and checked there."""
    monkeypatch.setenv("HOME", str(tmp_path))
    font = soundfont_file((tmp_path / "fonts").mkdir() or tmp_path / "fonts" / "Mine.sf2")
    (lib,) = libraries.resolve(["~/fonts/Mine.sf2"])
    assert (lib.name, lib.path) == ("Mine", font)
    assert libraries.problem(lib.path) is None
