"""Tests of the soundfont source's variation and effects (no synthesiser needed)."""

import dataclasses

import numpy as np
import pytest
from synthetic import soundfont_settings

from instrclf.sources.soundfont import effects as E
from instrclf.sources.soundfont.plan import Note


def test_time_warp_shifts_pitch():
    x = np.arange(1000, dtype=float)
    assert np.allclose(E.time_warp(x, cents=np.zeros(500)), x[:500])
    assert np.allclose(E.time_warp(x, cents=np.full(400, 1200.0)), x[:800:2])


def test_colored_noise_has_unit_rms_and_its_colour():
    rng = np.random.default_rng(0)
    white = E.colored_noise(44100, rng=rng, sample_rate=44100, color=0.0)
    pink = E.colored_noise(44100, rng=rng, sample_rate=44100, color=1.0)
    assert np.sqrt(np.mean(white**2)) == pytest.approx(1.0)

    def low_share(x):
        p = np.abs(np.fft.rfft(x)) ** 2
        return p[:1000].sum() / p.sum()  # below 1 kHz

    assert low_share(pink) > 3 * low_share(white)


def test_body_gain_peaks_where_the_body_resonates():
    freqs = np.array([100.0, 275.0, 275.0 * 0.82, 5000.0])
    violin = E.body_gain(freqs, scale=1.0, gain_db=8)
    viola = E.body_gain(freqs, scale=0.82, gain_db=8)
    assert 20 * np.log10(violin[1]) == pytest.approx(8, abs=1)
    assert viola[2] > viola[1] and violin[1] > violin[2]
    assert np.allclose(E.body_gain(freqs, scale=1.0, gain_db=0), 1.0)


def sine_raw(seconds=1.0, hz=440.0, sr=44100):
    t = np.arange(round(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def quiet(**changes) -> E.Variation:
    """A variation with no room, tilt, body or vibrato; a fixed SNR and onset."""
    fields = dict(
        on_frames=30000, off_frames=4410, onset_frames=8820, detune_cents=0.0, vibrato_cents=0.0,
        vibrato_hz=5.0, vibrato_phase=0.0, level_db=-12.0, reverb_seconds=0.1, reverb_mix=0.0,
        snr_db=20.0, noise_color=0.0, tilt_db_per_octave=0.0, body_scale=0.0, body_db=0.0, noise_seed=0,
    )
    return E.Variation(**(fields | changes))


@pytest.mark.parametrize("snr_db", [10.0, 25.0])
def test_noise_sits_at_the_requested_snr_over_the_whole_file(snr_db):
    v = quiet(snr_db=snr_db)
    y = E.finish(sine_raw(), variation=v, sample_rate=44100)
    assert len(y) == v.frames
    onset = y[: v.onset_frames - 100]  # room noise only
    held = y[v.onset_frames + 100 : v.onset_frames + v.on_frames]
    measured = 20 * np.log10(np.sqrt(np.mean(held**2)) / np.sqrt(np.mean(onset**2)))
    assert measured == pytest.approx(snr_db, abs=1.0)


def test_peak_level_is_the_drawn_level():
    y = E.finish(sine_raw(), variation=quiet(snr_db=120.0, level_db=-17.0), sample_rate=44100)
    assert 20 * np.log10(np.max(np.abs(y))) == pytest.approx(-17.0, abs=0.01)


def test_vibrato_moves_the_pitch():
    steady = E.finish(sine_raw(), variation=quiet(snr_db=120.0), sample_rate=44100)
    wobbly = E.finish(sine_raw(1.1), variation=quiet(snr_db=120.0, vibrato_cents=50.0), sample_rate=44100)

    def peak_sharpness(y):
        p = np.abs(np.fft.rfft(y[8820:38820] * np.hanning(30000))) ** 2
        return p.max() / p.sum()

    assert peak_sharpness(wobbly) < 0.5 * peak_sharpness(steady)


def test_finish_is_a_function_of_the_variation():
    v = quiet(reverb_mix=0.3, tilt_db_per_octave=2.0, noise_seed=5)
    a = E.finish(sine_raw(), variation=v, sample_rate=44100)
    assert np.array_equal(a, E.finish(sine_raw(), variation=v, sample_rate=44100))
    assert not np.array_equal(a, E.finish(sine_raw(), variation=dataclasses.replace(v, noise_seed=6), sample_rate=44100))


def test_variation_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        quiet().level_db = 0.0


def test_variation_is_seeded_by_note_identity_and_library_position():
    settings = soundfont_settings()
    a = Note("Vn", 69, "mf", 2, 0)
    va = E.variation(a, seed=1, settings=settings)
    assert va == E.variation(a, seed=1, settings=settings)
    assert va == E.variation(Note("Vn", 69, "mf", 2, 0, fold=4), seed=1, settings=settings)
    others = [
        E.variation(Note("Vn", 69, "mf", 3, 0), seed=1, settings=settings),  # another string
        E.variation(Note("Vn", 69, "mf", 2, 1), seed=1, settings=settings),  # another library
        E.variation(a, seed=2, settings=settings),  # another seed
    ]
    for other in others:
        assert other.level_db != va.level_db and other.snr_db != va.snr_db and other.noise_seed != va.noise_seed
    assert E.variation(Note("Tbn", 50, "mf", 0, 0), seed=1, settings=settings).vibrato_cents == 0.0
    assert va.vibrato_cents > 0


@pytest.mark.parametrize("seed", [0, 7])
def test_drawn_values_stay_inside_their_ranges(seed):
    settings = soundfont_settings()
    sr = settings.sample_rate
    for midi in range(55, 75):
        v = E.variation(Note("Vn", midi, "pp", 4, 1), seed=seed, settings=settings)
        assert round(settings.note_seconds[0] * sr) <= v.on_frames <= round(settings.note_seconds[1] * sr)
        assert settings.level_db[0] <= v.level_db <= settings.level_db[1]
        assert settings.snr_db[0] <= v.snr_db <= settings.snr_db[1]
        assert abs(v.detune_cents) <= settings.detune_cents
        assert abs(v.tilt_db_per_octave) <= settings.tilt_db_per_octave
        assert v.body_db == settings.body_db


@pytest.mark.parametrize("color", [0.0, 0.5, 1.0, 2.0])
def test_colored_noise_power_falls_as_one_over_f_to_the_colour(color):
    """The documented spectrum, measured: the log-log slope of the power between 100 Hz and 10 kHz is -color."""
    sr = 44100
    noise = np.mean([np.abs(np.fft.rfft(E.colored_noise(2**14, rng=np.random.default_rng(s), sample_rate=sr, color=color))) ** 2
                     for s in range(8)], axis=0)
    freqs = np.fft.rfftfreq(2**14, 1 / sr)
    edges = np.geomspace(100, 10000, 21)  # log-spaced bands, so every octave weighs the same
    centres = np.sqrt(edges[:-1] * edges[1:])
    power = [noise[(freqs >= lo) & (freqs < hi)].mean() for lo, hi in zip(edges[:-1], edges[1:])]
    slope = np.polyfit(np.log10(centres), np.log10(power), 1)[0]
    assert slope == pytest.approx(-color, abs=0.1)


def test_reverb_mix_0_is_the_dry_signal_and_1_the_room_alone():
    """``(1 - mix) * dry + mix * wet``: no room at 0, no dry path at 1."""
    x = np.random.default_rng(0).standard_normal(2000)

    def room(mix):
        return E.room_and_tilt(x, sample_rate=8000, rng=np.random.default_rng(1), reverb_seconds=0.2, reverb_mix=mix, tilt_db_per_octave=0.0)

    np.testing.assert_allclose(room(0.0), x, atol=1e-9)
    assert abs(np.corrcoef(room(1.0), x)[0, 1]) < 0.2  # the room's echo of the note, not the note


def test_detune_and_tilt_go_both_ways():
    """Drawn around zero: some notes flat and some sharp, some darker and some brighter, each up to its bound."""
    settings = soundfont_settings()
    drawn = [E.variation(Note("Vn", midi, "mf", 1, 0), seed=3, settings=settings) for midi in range(55, 95)]
    detune, tilt = [v.detune_cents for v in drawn], [v.tilt_db_per_octave for v in drawn]
    assert min(detune) < -settings.detune_cents / 2 and max(detune) > settings.detune_cents / 2
    assert min(tilt) < -settings.tilt_db_per_octave / 2 and max(tilt) > settings.tilt_db_per_octave / 2
