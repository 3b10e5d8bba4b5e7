"""Tests of the offline SoundFont source: plan, folds, variation, rendering, validation."""

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from instrclf.errors import ParameterError
from instrclf.params import load
from instrclf.sources import soundfont as S
from instrclf.tinysol import BY_ABBR, DYNAMICS_ID, INSTRUMENTS, METADATA_COLUMNS, N_FOLDS, pitch_name

REPO = Path(__file__).resolve().parents[1]

#: Tiny, fast settings: 4 notes per instrument, fractions of a second each.
TINY = {
    "soundfonts": [],
    "max_notes_per_instrument": 4,
    "string_span_semitones": 24,
    "jobs": 1,
    "sample_rate": 44100,
    "note_seconds": [0.15, 0.25],
    "release_seconds": [0.02, 0.05],
    "onset_seconds": [0.02, 0.06],
    "detune_cents": 20,
    "vibrato_cents": [10, 30],
    "vibrato_hz": [4.5, 6.5],
    "level_db": [-30, -3],
    "reverb_seconds": [0.05, 0.1],
    "reverb_mix": [0.0, 0.35],
    "snr_db": [12, 40],
    "noise_color": [0.0, 1.0],
    "tilt_db_per_octave": 4,
    "body_db": 8,
    "body_jitter": 0.05,
}


def tiny(**changes):
    """TINY with some values changed."""
    return {**TINY, **changes}


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def wav_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "audio").rglob("*.wav"))}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One tiny render (in-process), shared by the read-only tests."""
    out = tmp_path_factory.mktemp("render")
    stats = S.render(out, seed=7, settings=TINY)
    return out, stats


# --------------------------------------------------------------------------- plan and folds


def test_note_path_follows_tinysol_scheme():
    assert S.Note("Cb", 45, "mf", 2, 0).path == "Strings/Contrabass/ordinario/Cb-ord-A2-mf-2c-N.wav"
    assert S.Note("Fl", 61, "pp", 0, 0).path == "Winds/Flute/ordinario/Fl-ord-C#4-pp-N-N.wav"
    assert S.Note("Fl", 61, "pp", 0, 2).path == "Winds/Flute/ordinario/Fl-ord-C#4-pp-N-I2.wav"


def test_string_pitches_cover_each_string_from_open():
    pairs = S.string_pitches(open_pitches=(43, 38, 33, 28), low=28, high=72, span_semitones=24)
    by_string = {s: sorted(m for m, t in pairs if t == s) for s in (1, 2, 3, 4)}
    assert by_string[4] == list(range(28, 53))
    assert by_string[2] == list(range(38, 63))
    assert by_string[1] == list(range(43, 73))  # the top string reaches the range's top
    assert pairs == sorted(pairs)


def test_full_plan_counts_and_paths():
    notes = S.plan(seed=42)
    counts = Counter(n.abbr for n in notes)
    for inst in INSTRUMENTS:
        if not inst.strings:
            assert counts[inst.abbr] == 3 * (inst.high - inst.low + 1)
        else:  # near TinySOL's own count
            assert abs(counts[inst.abbr] - inst.files) <= 0.1 * inst.files
    paths = [n.path for n in notes]
    assert paths == sorted(paths)
    assert len(set(paths)) == len(paths)
    assert len(notes) == 2523


def test_instances_multiply_the_plan():
    one, two = S.plan(seed=1), S.plan(seed=1, n_instances=2)
    assert len(two) == 2 * len(one)
    assert Counter(n.instance for n in two) == {0: len(one), 1: len(one)}


@pytest.mark.parametrize("n_instances", [1, 2])
@pytest.mark.parametrize("seed", [0, 42])
def test_folds_balanced_by_instrument_pitch_and_dynamics(seed, n_instances):
    notes = S.plan(seed=seed, n_instances=n_instances)
    for inst in INSTRUMENTS:
        mine = [n for n in notes if n.abbr == inst.abbr]
        sizes = Counter(n.fold for n in mine)
        assert set(sizes) == set(range(N_FOLDS))
        assert max(sizes.values()) - min(sizes.values()) <= 1, inst.abbr
        for fold in range(N_FOLDS):
            in_fold = [n for n in mine if n.fold == fold]
            pitches = [n.midi for n in in_fold]
            assert min(pitches) - inst.low <= 4 and inst.high - max(pitches) <= 4, (inst.abbr, fold)
            assert {n.dynamics for n in in_fold} == set(S.VELOCITY)


def test_folds_follow_the_seed():
    assert S.plan(seed=3) == S.plan(seed=3)
    assert [n.fold for n in S.plan(seed=3)] != [n.fold for n in S.plan(seed=4)]


@pytest.mark.parametrize("k", [1, 3, 5, 7, 10, 33, 105, 10_000])
def test_spread_subset_is_even(k):
    notes = S.plan(seed=42, max_notes_per_instrument=k)
    full = S.plan(seed=42)
    assert set(notes) <= set(full)
    for inst in INSTRUMENTS:
        n_all = sum(1 for n in full if n.abbr == inst.abbr)
        mine = [n for n in notes if n.abbr == inst.abbr]
        assert len(mine) == min(k, n_all)
        sizes = Counter(n.fold for n in mine)
        assert len(sizes) == min(len(mine), N_FOLDS)
        assert max(sizes.values()) - min(sizes.values()) <= 1 or len(sizes) < N_FOLDS
        if len(mine) >= 3:
            assert {n.dynamics for n in mine} == set(S.VELOCITY), inst.abbr
        if len(mine) >= 10:
            pitches = [n.midi for n in mine]
            assert max(pitches) - min(pitches) >= 0.5 * (inst.high - inst.low), inst.abbr


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "key, value",
    [
        ("snr_db", [40, 12]),
        ("snr_db", "loud"),
        ("level_db", [-30, 6]),
        ("note_seconds", [0, 1]),
        ("reverb_mix", [0.0, 1.5]),
        ("reverb_seconds", [0.2]),
        ("sample_rate", 0),
        ("sample_rate", 44100.0),
        ("max_notes_per_instrument", 0),
        ("jobs", 0),
        ("tilt_db_per_octave", -1),
        ("detune_cents", True),
        ("noise_color", [0, 3]),
        ("body_db", -2),
        ("string_span_semitones", 2.5),
        ("soundfonts", "FluidR3_GM.sf2"),
        ("soundfonts", ["font.txt"]),
    ],
)
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(ParameterError, match=re.escape(f"data.soundfont.{key}")):
        S.check_settings(tiny(**{key: value}))


def test_missing_soundfont_names_key_and_path(tmp_path):
    missing = tmp_path / "nowhere" / "FluidR3_GM.sf2"
    with pytest.raises(ParameterError, match=r"data\.soundfont\.soundfonts\[0\].*nowhere"):
        S.render(tmp_path / "out", seed=1, settings=tiny(soundfonts=[str(missing)]))
    assert not (tmp_path / "out").exists()  # validated before anything is written


def test_unknown_and_missing_keys_are_refused():
    with pytest.raises(ParameterError, match="snr"):
        S.check_settings(tiny(snr=[1, 2]))
    settings = dict(TINY)
    del settings["level_db"]
    with pytest.raises(ParameterError, match="level_db"):
        S.check_settings(settings)


def test_repository_defaults_are_valid():
    settings = S.check_settings(load(REPO / "params.yaml")["data"]["soundfont"])
    assert settings["soundfonts"][0].name == "TimGM6mb.sf2"
    assert settings["jobs"] >= 1


# --------------------------------------------------------------------------- signal pieces


def test_time_warp_shifts_pitch():
    x = np.arange(1000, dtype=float)
    assert np.allclose(S.time_warp(x, cents=np.zeros(500)), x[:500])
    assert np.allclose(S.time_warp(x, cents=np.full(400, 1200.0)), x[:800:2])


def test_colored_noise_has_unit_rms_and_its_colour():
    rng = np.random.default_rng(0)
    white = S.colored_noise(44100, rng=rng, sample_rate=44100, color=0.0)
    pink = S.colored_noise(44100, rng=rng, sample_rate=44100, color=1.0)
    assert np.sqrt(np.mean(white**2)) == pytest.approx(1.0)

    def low_share(x):
        p = np.abs(np.fft.rfft(x)) ** 2
        return p[:1000].sum() / p.sum()  # below 1 kHz

    assert low_share(pink) > 3 * low_share(white)


def test_body_gain_peaks_where_the_body_resonates():
    freqs = np.array([100.0, 275.0, 275.0 * 0.82, 5000.0])
    violin = S.body_gain(freqs, scale=1.0, gain_db=8)
    viola = S.body_gain(freqs, scale=0.82, gain_db=8)
    assert 20 * np.log10(violin[1]) == pytest.approx(8, abs=1)
    assert viola[2] > viola[1] and violin[1] > violin[2]
    assert np.allclose(S.body_gain(freqs, scale=1.0, gain_db=0), 1.0)


def sine_raw(seconds=1.0, hz=440.0, sr=44100):
    t = np.arange(round(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def quiet_variation(**changes):
    """A variation with no room, tilt, body or vibrato; a fixed SNR and onset."""
    v = {
        "on_frames": 30000,
        "off_frames": 4410,
        "onset_frames": 8820,
        "vibrato_cents": 0.0,
        "vibrato_hz": 5.0,
        "vibrato_phase": 0.0,
        "level_db": -12.0,
        "reverb_seconds": 0.1,
        "reverb_mix": 0.0,
        "snr_db": 20.0,
        "noise_color": 0.0,
        "tilt_db_per_octave": 0.0,
        "body_scale": 0.0,
        "body_db": 0.0,
        "rng": np.random.default_rng(0),
    }
    v.update(changes)
    return v


@pytest.mark.parametrize("snr_db", [10.0, 25.0])
def test_noise_sits_at_the_requested_snr_over_the_whole_file(snr_db):
    v = quiet_variation(snr_db=snr_db)
    y = S.finish(sine_raw(), v=v, sample_rate=44100)
    assert len(y) == v["onset_frames"] + v["on_frames"] + v["off_frames"]
    onset = y[: v["onset_frames"] - 100]  # room noise only
    held = y[v["onset_frames"] + 100 : v["onset_frames"] + v["on_frames"]]
    measured = 20 * np.log10(np.sqrt(np.mean(held**2)) / np.sqrt(np.mean(onset**2)))
    assert measured == pytest.approx(snr_db, abs=1.0)


def test_peak_level_is_the_drawn_level():
    v = quiet_variation(snr_db=120.0, level_db=-17.0)
    y = S.finish(sine_raw(), v=v, sample_rate=44100)
    assert 20 * np.log10(np.max(np.abs(y))) == pytest.approx(-17.0, abs=0.01)


def test_vibrato_moves_the_pitch():
    steady = S.finish(sine_raw(), v=quiet_variation(snr_db=120.0), sample_rate=44100)
    wobbly = S.finish(sine_raw(1.1), v=quiet_variation(snr_db=120.0, vibrato_cents=50.0), sample_rate=44100)

    def peak_sharpness(y):
        p = np.abs(np.fft.rfft(y[8820:38820] * np.hanning(30000))) ** 2
        return p.max() / p.sum()

    assert peak_sharpness(wobbly) < 0.5 * peak_sharpness(steady)


def test_variation_is_seeded_by_note_identity():
    settings = S.check_settings(TINY)
    a, b = S.Note("Vn", 69, "mf", 2, 0), S.Note("Vn", 69, "mf", 3, 0)
    va = S.variation(a, seed=1, settings=settings)
    assert va.keys() == S.variation(a, seed=1, settings=settings).keys()
    same = S.variation(S.Note("Vn", 69, "mf", 2, 0, fold=4), seed=1, settings=settings)
    assert {k: va[k] for k in va if k != "rng"} == {k: same[k] for k in same if k != "rng"}
    for other in (S.variation(b, seed=1, settings=settings), S.variation(a, seed=2, settings=settings)):
        assert other["level_db"] != va["level_db"] and other["snr_db"] != va["snr_db"]
    assert S.variation(S.Note("Tbn", 50, "mf", 0, 0), seed=1, settings=settings)["vibrato_cents"] == 0.0
    assert va["vibrato_cents"] > 0


# --------------------------------------------------------------------------- the synthesiser


@pytest.fixture(scope="module")
def synth():
    import tinysoundfont

    s = tinysoundfont.Synth(samplerate=44100)
    return s, s.sfload(str(S.default_soundfont()))


def play(synth, program, midi, velocity=80):
    s, sfid = synth
    return S.synthesize(s, sfid=sfid, program=program, midi=midi, velocity=velocity, detune_cents=0.0, on_frames=8820, off_frames=2205)


def test_synth_output_does_not_depend_on_the_previous_note(synth):
    first = play(synth, BY_ABBR["Vn"].program, 69)
    play(synth, BY_ABBR["Fl"].program, 90, velocity=120)
    assert np.array_equal(first, play(synth, BY_ABBR["Vn"].program, 69))
    assert len(first) == 8820 + 2205


def test_timgm6mb_has_no_alto_sax_e4(synth):
    """TimGM6mb's alto sax has no sample on key 64: the render is silent and must be skipped."""
    silent = play(synth, BY_ABBR["ASax"].program, 64)
    loud = play(synth, BY_ABBR["ASax"].program, 65)
    assert np.max(np.abs(silent)) < 10 ** (S.SILENT_DB / 20)
    assert np.max(np.abs(loud)) > 10 ** (-40 / 20)


# --------------------------------------------------------------------------- rendering


def test_render_writes_tinysol_layout(rendered):
    out, stats = rendered
    rows = read_csv(out / "TinySOL_metadata.csv")
    with open(out / "TinySOL_metadata.csv", encoding="utf-8") as f:
        assert f.readline().rstrip("\n").split(",") == list(METADATA_COLUMNS)
    assert [r["Path"] for r in rows] == sorted(r["Path"] for r in rows)
    assert sorted(wav_bytes(out)) == sorted(f"audio/{r['Path']}" for r in rows)
    assert stats["notes_planned"] == 4 * len(INSTRUMENTS)
    assert stats["notes_rendered"] == len(rows) == stats["notes_planned"] - stats["notes_silent"]
    assert stats["audio_seconds"] > 0 and stats["wall_seconds"] > 0
    name = re.compile(r"^(?P<abbr>\w+)-ord-(?P<pitch>[A-G]#?-?\d)-(?P<dyn>pp|mf|ff)-(?P<string>[1-4]c|N)-(?P<tag>N|I\d+)\.wav$")
    for r in rows:
        inst = BY_ABBR[r["Instrument (abbr.)"]]
        folder, technique, file = r["Path"].rsplit("/", 2)
        assert folder == inst.folder and technique == "ordinario"
        m = name.match(file)
        assert m and m["abbr"] == inst.abbr and m["pitch"] == r["Pitch"] and m["dyn"] == r["Dynamics"]
        assert r["Family"] == inst.family and r["Instrument (in full)"] == inst.name
        assert (r["Technique (abbr.)"], r["Technique (in full)"]) == ("ord", "ordinario")
        assert r["Pitch"] == pitch_name(int(r["Pitch ID"])) and inst.low <= int(r["Pitch ID"]) <= inst.high
        assert int(r["Dynamics ID"]) == DYNAMICS_ID[r["Dynamics"]]
        assert r["Fold"] in {"0", "1", "2", "3", "4"}
        assert r["Instance ID"] == "0" and m["tag"] == "N"
        assert r["Resampled"] == "False"
        if inst.strings:
            assert m["string"] == f"{r['String ID']}c"
        else:
            assert r["String ID"] == "" and m["string"] == "N"


def test_render_writes_mono_16_bit_wav(rendered):
    out, _ = rendered
    for path in list((out / "audio").rglob("*.wav"))[:10]:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (44100, 1, "PCM_16", "WAV")
        y, _ = sf.read(path)
        assert 0.15 <= len(y) / 44100 <= 0.25 + 0.05 + 0.06 + 1e-3
        assert np.max(np.abs(y)) > 10 ** (-32 / 20)


def test_same_seed_same_bytes_whatever_the_workers(rendered, tmp_path):
    out, _ = rendered
    S.render(tmp_path / "again", seed=7, settings=tiny(jobs=2))
    assert (tmp_path / "again" / "TinySOL_metadata.csv").read_bytes() == (out / "TinySOL_metadata.csv").read_bytes()
    assert wav_bytes(tmp_path / "again") == wav_bytes(out)
    S.render(tmp_path / "other", seed=8, settings=TINY)
    first, other = wav_bytes(out), wav_bytes(tmp_path / "other")
    common = set(first) & set(other)
    assert common and all(first[p] != other[p] for p in common)


def test_instances_of_the_same_note_differ(tmp_path):
    font = str(S.default_soundfont())  # the same font again is a second instance
    S.render(tmp_path / "two", seed=3, settings=tiny(soundfonts=[font], max_notes_per_instrument=3))
    rows = read_csv(tmp_path / "two" / "TinySOL_metadata.csv")
    assert {r["Instance ID"] for r in rows} == {"0", "1"}
    assert all(r["Path"].endswith("-I1.wav") == (r["Instance ID"] == "1") for r in rows)
    # The same pitch, dynamics and string on two instances: different variation, different audio.
    settings = S.check_settings(tiny(soundfonts=[font]))
    S._start(settings["soundfonts"], 44100)
    try:
        twins = [S.Note("Va", 62, "mf", 3, instance) for instance in (0, 1)]
        for note in twins:
            S._render_one((note, 3, settings, str(tmp_path / "twins")))
    finally:
        S._STATE.clear()
    a, b = (sf.read(tmp_path / "twins" / note.path)[0] for note in twins)
    assert twins[1].path.endswith("-I1.wav")
    assert not np.array_equal(a[: min(len(a), len(b))], b[: min(len(a), len(b))])


def test_silent_notes_are_skipped_and_counted(tmp_path, monkeypatch):
    real = S.synthesize
    notes = [n for n in S.plan(seed=5, max_notes_per_instrument=4) if n.abbr == "Fl"]
    target = notes[0]

    def fake(synth, **kwargs):
        y = real(synth, **kwargs)
        if kwargs["program"] == BY_ABBR["Fl"].program and kwargs["midi"] == target.midi and kwargs["velocity"] == S.VELOCITY[target.dynamics]:
            return np.zeros_like(y)
        return y

    monkeypatch.setattr(S, "synthesize", fake)
    stats = S.render(tmp_path, seed=5, settings=TINY)
    rows = read_csv(tmp_path / "TinySOL_metadata.csv")
    assert stats["notes_silent"] == 1 and stats["notes_rendered"] == stats["notes_planned"] - 1
    assert target.path not in {r["Path"] for r in rows}
    assert not (tmp_path / "audio" / target.path).exists()
    assert len(rows) == stats["notes_rendered"]
