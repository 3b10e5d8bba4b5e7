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


# --- what mutation testing asked for -----------------------------------------------------------


#: Drawn and computed before any change to effects.py since the committed renders (see the two tests that use them).
GOLDEN_VARIATION = {"frames_and_seed": (84626, 5337, 7543, 4936540450537946538),
                    "floats": [-28.421515326497367, 50.64782735117387, 2.081197363835079, 1.015818590368272]}
GOLDEN_FINISH = [-0.0006124030219733045, 0.0050456530091718636, -0.009934270543703919, -0.04199228681345899,
                 -0.25274868779045356, 0.043065295868470986]


def params_soundfont():
    """The project's own ``data.soundfont`` (params.yaml): what the committed renders were drawn with."""
    import yaml
    from pathlib import Path

    from instrclf.settings import SoundfontSettings

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text(encoding="utf-8"))
    return SoundfontSettings.from_params(params["data"]["soundfont"])


def test_every_drawn_value_is_inside_its_range_and_spans_it():
    """Over many notes each value stays in its range of data.soundfont and reaches across most of it."""
    s = soundfont_settings()
    sr = s.sample_rate
    bowed = [E.variation(Note("Vn", midi, dyn, string, lib), seed=5, settings=s)
             for midi in range(55, 80) for dyn in ("pp", "ff") for string in (1, 2) for lib in (0, 1)]
    winds = [E.variation(Note("Fl", midi, "mf", 0, 0), seed=5, settings=s) for midi in range(60, 90)]
    frames = {"off_frames": s.release_seconds, "onset_frames": s.onset_seconds}
    floats = {"vibrato_hz": s.vibrato_hz, "reverb_seconds": s.reverb_seconds, "reverb_mix": s.reverb_mix,
              "noise_color": s.noise_color, "vibrato_phase": (0.0, 2 * np.pi)}
    for name, (lo, hi) in [*frames.items(), *floats.items()]:
        scale = sr if name in frames else 1
        values = [getattr(v, name) for v in bowed + winds]
        low, high = (round(lo * scale), round(hi * scale)) if name in frames else (lo, hi)
        assert all(low <= x <= high for x in values), name
        margin = 0.1 * (hi - lo) * scale  # drawn across the range: both ends reached within a tenth
        assert min(values) < lo * scale + margin and max(values) > hi * scale - margin, name
    jitter = s.body_jitter
    scales = [v.body_scale for v in bowed]
    assert all(2 ** -jitter <= x <= 2 ** jitter for x in scales)
    assert min(scales) < 2 ** (-jitter / 2) and max(scales) > 2 ** (jitter / 2)  # both ways around the violin
    assert all(v.body_db == s.body_db for v in bowed)
    assert all(v.body_scale == 0.0 and v.body_db == 0.0 for v in winds)  # no body on a flute
    seeds = [v.noise_seed for v in bowed + winds]
    assert len(set(seeds)) == len(seeds) and max(seeds) > 2**40  # drawn from 63 bits


def test_a_notes_variation_under_the_projects_seed_never_changes():
    """Seed 42 and params.yaml's data.soundfont: the committed renders were drawn with exactly these numbers."""
    v = E.variation(Note("Vn", 69, "mf", 2, 0), seed=42, settings=params_soundfont())
    assert (v.on_frames, v.off_frames, v.onset_frames, v.noise_seed) == GOLDEN_VARIATION["frames_and_seed"]
    assert [v.level_db, v.snr_db, v.vibrato_cents, v.body_scale] == pytest.approx(GOLDEN_VARIATION["floats"], rel=1e-12)


def test_time_warp_gives_float32():
    assert E.time_warp(np.arange(100, dtype=np.float64), cents=np.zeros(50)).dtype == np.float32


def test_body_resonances_have_their_gains_and_widths():
    """The strongest resonance is body_db; the others keep their share; one width away a bump falls to e^-1/2."""
    freqs = np.array([275.0, 460.0, 2500.0, 275.0 * 2**0.12, 20.0])
    db = 20 * np.log10(E.body_gain(freqs, scale=1.0, gain_db=10.0))
    assert db[0] == pytest.approx(10.0, abs=0.05)  # the air mode A0, alone at 275 Hz
    assert db[2] == pytest.approx(9.0, abs=0.3)  # the bridge hill, 0.9 of it
    assert db[1] == pytest.approx(8.0 + 9.0 * np.exp(-0.5 * (np.log2(540 / 460) / 0.1) ** 2), abs=0.2)  # B1- and B1+'s tail
    assert db[3] == pytest.approx(10.0 * np.exp(-0.5), abs=0.1)
    assert db[4] == pytest.approx(0.0, abs=0.01)
    assert 20 * np.log10(E.body_gain(np.array([275.0]), scale=1.0, gain_db=0.5))[0] == pytest.approx(0.5, abs=0.01)


def test_no_body_is_flat_without_a_warning(recwarn):
    freqs = np.array([20.0, 275.0, 5000.0])
    assert np.array_equal(E.body_gain(freqs, scale=0.0, gain_db=8.0), np.ones(3))
    assert not recwarn.list  # no log of a zero body size


def dry(x, *, sample_rate=8000, tilt=0.0, body_scale=0.0, body_db=0.0):
    return E.room_and_tilt(x, sample_rate=sample_rate, rng=np.random.default_rng(0), reverb_seconds=0.1,
                           reverb_mix=0.0, tilt_db_per_octave=tilt, body_scale=body_scale, body_db=body_db)


def sine(hz, n=8000, sr=8000):
    return np.sin(2 * np.pi * hz * np.arange(n) / sr)


def middle_rms(y):
    return np.sqrt(np.mean(y[len(y) // 4 : -len(y) // 4] ** 2))


@pytest.mark.parametrize(("hz", "gain_db"), [(2000.0, 6.0), (500.0, -6.0), (1000.0, 0.0), (125.0, -18.0)])
def test_the_eq_tilt_is_its_slope_per_octave_around_1_khz(hz, gain_db):
    x = sine(hz)
    assert 20 * np.log10(middle_rms(dry(x, tilt=6.0)) / middle_rms(x)) == pytest.approx(gain_db, abs=0.1)


def test_a_string_body_boosts_its_resonance_in_the_room():
    x = sine(275.0)
    assert 20 * np.log10(middle_rms(dry(x, body_scale=1.0, body_db=8.0)) / middle_rms(x)) == pytest.approx(8.0, abs=0.1)
    assert np.allclose(dry(x), dry(x, body_scale=1.0, body_db=0.0))


def impulse_response(mix, *, seconds=0.1, sr=8000, seed=1):
    x = np.zeros(2 * round(seconds * sr))
    x[0] = 1.0
    return E.room_and_tilt(x, sample_rate=sr, rng=np.random.default_rng(seed), reverb_seconds=seconds,
                           reverb_mix=mix, tilt_db_per_octave=0.0)


def test_the_room_is_mix_times_a_unit_energy_tail_plus_the_rest_dry():
    wet = impulse_response(1.0)
    assert np.sum(wet**2) == pytest.approx(1.0, rel=1e-9)  # the wet part at the dry part's energy
    dry_part = np.zeros_like(wet)
    dry_part[0] = 1.0
    for mix in (0.25, 0.5):
        np.testing.assert_allclose(impulse_response(mix), (1 - mix) * dry_part + mix * wet, atol=1e-12)


def test_the_rooms_tail_decays_60_db_in_its_rt60():
    """Schroeder's backward integral of the impulse response falls 60 dB over reverb_seconds."""
    sr, seconds = 8000, 0.1
    for seed in range(4):
        ir = impulse_response(1.0, seconds=seconds, sr=sr, seed=seed)[: round(seconds * sr)]
        energy = np.cumsum(ir[::-1] ** 2)[::-1]
        decay = 10 * np.log10(energy / energy[0])
        t5, t35 = np.argmax(decay < -5) / sr, np.argmax(decay < -35) / sr
        assert 2 * (t35 - t5) == pytest.approx(seconds, rel=0.1)  # 30 dB in half the RT60


@pytest.mark.parametrize("n", [226, 326])  # 226 + 800 - 2 = 1024 and 326 + 800 - 1 = 1125 (odd): FFT lengths as they are
def test_the_room_is_a_linear_convolution_cut_to_the_input(n):
    """No wrap-around of the tail into the start, whatever the FFT length: the impulse response convolved."""
    sr, seconds = 8000, 0.1
    ir = impulse_response(0.3, seconds=seconds, sr=sr)[: round(seconds * sr)]
    x = np.random.default_rng(9).standard_normal(n)
    y = E.room_and_tilt(x, sample_rate=sr, rng=np.random.default_rng(1), reverb_seconds=seconds, reverb_mix=0.3,
                        tilt_db_per_octave=0.0)
    np.testing.assert_allclose(y, np.convolve(x, ir)[:n], atol=1e-9)


@pytest.mark.parametrize("color", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("n", [1000, 1125])  # 1125 = 3**2 * 5**3: an odd FFT length
@pytest.mark.parametrize("sample_rate", [8000, 44100])  # at 44.1 kHz pink noise is shaped mostly down: quieter before scaling
def test_colored_noise_is_n_samples_at_unit_rms_for_every_colour(color, n, sample_rate):
    noise = E.colored_noise(n, rng=np.random.default_rng(2), sample_rate=sample_rate, color=color)
    assert len(noise) == n and np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, rel=1e-9)


def test_colored_noise_is_flat_below_40_hz():
    """The colour is shaped down to 40 Hz only: below it brown noise is as flat as white."""
    sr, n = 8000, 2**16
    power = np.mean([np.abs(np.fft.rfft(E.colored_noise(n, rng=np.random.default_rng(s), sample_rate=sr, color=2.0))) ** 2
                     for s in range(4)], axis=0)
    freqs = np.fft.rfftfreq(n, 1 / sr)
    below, band = power[(freqs > 5) & (freqs < 35)].mean(), power[(freqs > 45) & (freqs < 75)].mean()
    assert below / band == pytest.approx((40 / 60) ** -2, rel=0.35)  # 1/f^2 stops at 40 Hz, 60 Hz is the band's middle


def instantaneous_hz(y, sr):
    from scipy.signal import hilbert

    return np.diff(np.unwrap(np.angle(hilbert(y)))) * sr / (2 * np.pi)


def test_vibrato_is_its_depth_rate_and_phase_after_the_ramp():
    """A 440 Hz tone with 50 cents at 5 Hz: after the 0.3-s ramp the pitch swings +-50 cents, 5 times a
    second, starting from the drawn phase (pi/2: at 0.5 s into the note, sin(5 pi + pi/2) = -1, the lowest)."""
    sr = 44100
    v = quiet(snr_db=120.0, onset_frames=0, on_frames=44100, off_frames=0, vibrato_cents=50.0, vibrato_hz=5.0,
              vibrato_phase=np.pi / 2)
    y = E.finish(sine_raw(1.2), variation=v, sample_rate=sr)
    hz = instantaneous_hz(y, sr)
    settled = hz[round(0.4 * sr) : round(0.98 * sr)]
    cents = 1200 * np.log2(np.convolve(settled, np.ones(441) / 441, mode="valid") / 440.0)  # 10-ms mean
    assert np.percentile(cents, 99) == pytest.approx(50, abs=4) and np.percentile(cents, 1) == pytest.approx(-50, abs=4)
    crossings = np.sum(np.diff(np.sign(cents)) > 0)  # upward zero crossings of the pitch
    assert crossings == 3  # cos(10 pi t) rises through 0 at 0.55, 0.75 and 0.95 s
    at_half = 1200 * np.log2(np.median(hz[round(0.495 * sr) : round(0.505 * sr)]) / 440.0)
    assert at_half == pytest.approx(-50, abs=5)


def test_even_a_slight_vibrato_changes_the_samples():
    v = quiet(snr_db=120.0)
    slight = dataclasses.replace(v, vibrato_cents=0.5)
    assert not np.allclose(E.finish(sine_raw(1.1), variation=v, sample_rate=44100),
                           E.finish(sine_raw(1.1), variation=slight, sample_rate=44100))


def test_a_bowed_notes_body_is_in_the_finished_file():
    """A 275 Hz + 5 kHz tone: a violin body lifts the 275 Hz partial by body_db against the other."""
    sr = 44100
    t = np.arange(round(1.1 * sr)) / sr
    raw = (0.3 * np.sin(2 * np.pi * 275 * t) + 0.3 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)

    def ratio_db(**changes):
        y = E.finish(raw, variation=quiet(snr_db=120.0, **changes), sample_rate=sr)
        p = np.abs(np.fft.rfft(y[8820:38820]))
        f = np.fft.rfftfreq(30000, 1 / sr)
        return 20 * np.log10(p[np.argmin(abs(f - 275))] / p[np.argmin(abs(f - 5000))])

    hill_at_5k = 0.9 * 8.0 * np.exp(-0.5 * (np.log2(5000 / 2500) / 0.45) ** 2)  # the bridge hill reaches 5 kHz a little
    assert ratio_db(body_scale=1.0, body_db=8.0) - ratio_db() == pytest.approx(8.0 - hill_at_5k, abs=0.1)


def test_the_file_fades_out_over_its_last_10_ms():
    sr = 44100
    v = quiet(snr_db=120.0)
    y = E.finish(sine_raw(1.1), variation=v, sample_rate=sr)
    fade = round(0.01 * sr)
    before = np.sqrt(np.mean(y[-3 * fade : -fade] ** 2))
    middle = np.sqrt(np.mean(y[-fade // 2 - 20 : -fade // 2 + 20] ** 2))
    assert middle / before == pytest.approx(0.5, abs=0.05)
    assert np.max(np.abs(y[-5:])) < 0.01 * np.max(np.abs(y))


def test_the_snr_is_against_the_whole_held_note():
    """A note that decays while held: its noise sits snr_db below the RMS of the whole held part."""
    sr, snr_db = 44100, 20.0
    t = np.arange(round(1.1 * sr)) / sr
    raw = (0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t)).astype(np.float32)
    v = quiet(snr_db=snr_db)
    y = E.finish(raw, variation=v, sample_rate=sr)
    noise_rms = np.sqrt(np.mean(y[: v.onset_frames - 100] ** 2))
    held_rms = np.sqrt(np.mean(y[v.onset_frames : v.onset_frames + v.on_frames] ** 2))
    assert 20 * np.log10(held_rms / noise_rms) == pytest.approx(snr_db, abs=0.5)


def test_a_hot_note_is_clipped_to_the_16_bit_range():
    y = E.finish(sine_raw(), variation=quiet(level_db=0.0, snr_db=0.0), sample_rate=44100)
    assert y.min() == -1.0 and y.max() == 32767 / 32768


def test_a_finished_note_under_a_fixed_variation_never_changes():
    """The same raw render and variation give the same samples in every version: the committed renders depend on it."""
    v = quiet(reverb_mix=0.2, reverb_seconds=0.05, tilt_db_per_octave=1.5, noise_color=0.7, snr_db=30.0, noise_seed=11,
              on_frames=2000, off_frames=500, onset_frames=300, body_scale=0.9, body_db=6.0)
    y = E.finish(sine_raw(0.4, sr=8000), variation=v, sample_rate=8000)
    assert y[[0, 150, 299, 1000, 2222, 2700]] == pytest.approx(GOLDEN_FINISH, rel=1e-6, abs=1e-12)
