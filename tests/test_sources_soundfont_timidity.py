"""Gravis-patch libraries played by timidity (Debian's freepats) through the SoundFont note plan."""

import shutil

import numpy as np
import pytest
from synthetic import soundfont_settings

from instrclf import layout
from instrclf.errors import DataError
from instrclf.sources.soundfont import libraries, render, timidity

FREEPATS = libraries.KNOWN["freepats"][0]
needs_freepats = pytest.mark.skipif(
    libraries.problem(FREEPATS) is not None, reason="needs freepats and timidity (apt-get install freepats timidity)"
)

CFG = """dir /nowhere
# a comment
drumset 0
 40 Drum_000/040_Snare.pat
bank 0
 40 Tone_000/040_Violin.pat amp=100
 73 Tone_000/073_Flute.pat   # flute
bank 1
 41 Tone_001/041_Viola.pat
"""


def test_programs_are_those_of_melodic_bank_0(tmp_path):
    cfg = tmp_path / "mini.cfg"
    cfg.write_text(CFG)
    assert timidity.programs(cfg) == {40, 73}  # not the drum 40's neighbours, not bank 1's viola


def test_a_config_without_programs_or_missing_is_a_problem(tmp_path):
    assert timidity.problem(tmp_path / "none.cfg") == "is missing"
    (tmp_path / "empty.cfg").write_text("dir /x\n")
    assert "maps no program" in timidity.problem(tmp_path / "empty.cfg")


@pytest.mark.parametrize(("cents", "bend"), [(0, 8192), (100, 8192 + 4096), (-200, 1), (500, 16383)])
def test_the_detune_is_a_pitch_bend_over_two_semitones(cents, bend):
    song = timidity.midi_file(program=73, midi=60, velocity=80, detune_cents=cents, on_ms=500, total_ms=800)
    at = song.index(b"\xe0")
    assert song[at + 1] | (song[at + 2] << 7) == round(bend) and song.startswith(b"MThd")


def test_a_missing_freepats_names_its_packages(monkeypatch, tmp_path):
    monkeypatch.setitem(libraries.KNOWN, "freepats", (tmp_path / "freepats.cfg", "freepats timidity"))
    with pytest.raises(DataError, match=r"freepats.cfg is missing \(library freepats; install it with `apt-get install freepats timidity`\)"):
        libraries.resolve(["freepats"], check=True)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("freepats")
    figures = render.render(out, seed=7, settings=soundfont_settings(libraries=["freepats", "TimGM6mb"], jobs=2), progress=False)
    return out, figures


@needs_freepats
def test_freepats_renders_every_instrument_it_has_and_counts_the_two_it_lacks(rendered):
    out, figures = rendered
    meta = layout.read_metadata(out, check_audio=True)
    mine = meta[meta["library"] == "freepats"]
    assert set(mine["instrument"]) == set(meta["instrument"]) - {"Va", "Cb"}  # no viola, no double bass
    assert figures["notes_freepats"] == len(mine) and figures["silent_freepats"] == 4  # 2 notes each of Va and Cb
    assert figures["notes_TimGM6mb"] == 28
    assert (figures["instruments_freepats"], figures["instruments_TimGM6mb"]) == (12, 14)


@needs_freepats
def test_freepats_notes_are_byte_identical_for_a_seed_whatever_the_jobs(rendered, tmp_path):
    out, _ = rendered
    render.render(tmp_path, seed=7, settings=soundfont_settings(libraries=["freepats", "TimGM6mb"], jobs=1), progress=False)
    assert (tmp_path / layout.METADATA_FILE).read_bytes() == (out / layout.METADATA_FILE).read_bytes()
    for path in sorted((out / "audio").rglob("*.wav")):
        assert (tmp_path / path.relative_to(out)).read_bytes() == path.read_bytes(), path


@needs_freepats
def test_freepats_plays_its_own_samples_at_the_planned_pitch():
    """A flute A4 from freepats: sound, at 440 Hz (a piano stand-in or silence would fail)."""
    sr = 22050
    y = timidity.synthesize(FREEPATS, program=73, midi=69, velocity=80, detune_cents=0, on_frames=sr, off_frames=sr // 10, sample_rate=sr)
    assert len(y) == sr + sr // 10 and np.max(np.abs(y)) > 0.01
    spectrum = np.abs(np.fft.rfft(y[sr // 4: sr // 4 + 8192] * np.hanning(8192)))
    assert abs(np.argmax(spectrum) * sr / 8192 - 440.0) < 6
    assert not np.any(timidity.synthesize(FREEPATS, program=41, midi=60, velocity=80, detune_cents=0, on_frames=100, off_frames=10, sample_rate=sr))


def test_timidity_missing_is_named(monkeypatch, tmp_path):
    cfg = tmp_path / "mini.cfg"
    cfg.write_text(CFG)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert timidity.problem(cfg) == "needs the timidity program (apt-get install timidity)"


def test_a_config_path_is_a_library_named_by_its_stem(tmp_path):
    cfg = tmp_path / "my_patches.cfg"
    cfg.write_text(CFG)
    lib = libraries.library(str(cfg))
    assert (lib.name, lib.path, lib.package) == ("my_patches", cfg, None)
    # read as a config, not refused for lacking a SoundFont's RIFF header
    assert libraries.problem(cfg) == (None if shutil.which("timidity") else "needs the timidity program (apt-get install timidity)")
    assert libraries.problem(tmp_path / "other.cfg") == "is missing"
