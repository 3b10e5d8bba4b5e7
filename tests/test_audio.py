"""Tests of instrclf.audio: loading, mono, resampling, envelope, windows, prepare, streaming."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from instrclf import audio
from instrclf.errors import DataError, ParameterError
from instrclf.settings import CleanSettings

SAMPLE_RATES = [8000, 16000, 22050, 44100, 48000, 96000, 192000]
# WAV allows unsigned 8-bit only (PCM_S8 is refused by libsndfile for WAV).
SUBTYPES = {"PCM_U8": 1 / 64, "PCM_16": 1e-4, "PCM_24": 1e-6, "PCM_32": 1e-6, "FLOAT": 1e-7, "DOUBLE": 1e-7}
CONFIG = {"sample_rate": 16000, "threshold_db": -64.3, "envelope_ms": 50, "delta_time": 1.0}


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def tone(seconds, sr, *, freq=440.0, amp=0.5, channels=1):
    """A sine, shape (n,) for one channel or (n, channels) with a different level per channel."""
    t = np.arange(round(seconds * sr)) / sr
    y = amp * np.sin(2 * np.pi * freq * t)
    if channels == 1:
        return y
    return np.stack([y * (1 - 0.1 * c) for c in range(channels)], axis=1)


# --- load -------------------------------------------------------------------------------


@pytest.mark.parametrize("sr", SAMPLE_RATES)
def test_load_sample_rates(tmp_path, sr):
    y = tone(0.05, sr)
    sf.write(tmp_path / "a.wav", y, sr, subtype="PCM_16")
    got, got_sr = audio.load(tmp_path / "a.wav")
    assert got_sr == sr and isinstance(got_sr, int)
    assert got.shape == (len(y), 1) and got.dtype == np.float32
    np.testing.assert_allclose(got[:, 0], y, atol=1e-4)


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("subtype", list(SUBTYPES))
def test_load_subtypes_and_channels(tmp_path, rng, subtype, channels):
    y = rng.uniform(-0.9, 0.9, size=(800, channels))
    sf.write(tmp_path / "a.wav", y, 16000, subtype=subtype)
    got, sr = audio.load(tmp_path / "a.wav")
    assert sr == 16000 and got.shape == (800, channels) and got.dtype == np.float32
    np.testing.assert_allclose(got, y, atol=SUBTYPES[subtype])


def _write_bad(path, kind):
    """Write one kind of broken file at ``path``."""
    if kind == "empty file":
        path.write_bytes(b"")
    elif kind == "text renamed .wav":
        path.write_text("this is not audio\n" * 20)
    elif kind == "truncated":
        sf.write(path, tone(0.5, 16000), 16000, subtype="PCM_16")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "header only":
        sf.write(path, tone(0.5, 16000), 16000, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:44])
    elif kind == "zero frames":
        sf.write(path, np.zeros(0), 16000, subtype="PCM_16")
    elif kind == "NaN samples":
        y = tone(0.1, 16000).astype(np.float32)
        y[100] = np.nan
        sf.write(path, y, 16000, subtype="FLOAT")
    elif kind == "inf samples":
        y = tone(0.1, 16000)
        y[5] = -np.inf
        sf.write(path, y, 16000, subtype="DOUBLE")
    elif kind == "500 Hz":
        sf.write(path, tone(0.1, 500), 500, subtype="PCM_16")
    elif kind == "400 kHz":
        sf.write(path, tone(0.01, 400000), 400000, subtype="PCM_16")
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("empty file", "empty"),
        ("text renamed .wav", "not readable as audio"),
        ("truncated", "truncated"),
        ("header only", "truncated"),
        ("zero frames", "no audio samples"),
        ("NaN samples", "NaN"),
        ("inf samples", "infinite"),
        ("500 Hz", "500 Hz is outside 1000-384000 Hz"),
        ("400 kHz", "400000 Hz is outside 1000-384000 Hz"),
    ],
)
def test_load_bad_files_name_file_and_reason(tmp_path, kind, reason):
    path = tmp_path / "bad.wav"
    _write_bad(path, kind)
    with pytest.raises(DataError) as info:
        audio.load(path)
    assert str(path) in str(info.value) and reason in str(info.value)


@pytest.mark.parametrize("sr", [audio.MIN_SAMPLE_RATE, 192000, audio.MAX_SAMPLE_RATE])
def test_load_accepts_the_bounds_of_the_sample_rate_range(tmp_path, sr):
    sf.write(tmp_path / "a.wav", tone(0.05, sr), sr, subtype="PCM_16")
    y, got = audio.load(tmp_path / "a.wav")
    assert got == sr and len(y) == round(0.05 * sr)


def test_load_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.wav"):
        audio.load(tmp_path / "nope.wav")


def test_load_accepts_wav_with_trailing_chunk(tmp_path):
    # A chunk after "data" (e.g. LIST metadata) is not truncation.
    sf.write(tmp_path / "a.wav", tone(0.1, 16000), 16000, subtype="PCM_16")
    data = bytearray((tmp_path / "a.wav").read_bytes())
    extra = b"LIST" + (4).to_bytes(4, "little") + b"INFO"
    data[4:8] = (len(data) - 8 + len(extra)).to_bytes(4, "little")
    (tmp_path / "a.wav").write_bytes(bytes(data) + extra)
    y, _ = audio.load(tmp_path / "a.wav")
    assert len(y) == 1600


# --- mono and resampling ------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_to_mono_is_the_average(rng, channels):
    y = rng.standard_normal((500, channels)).astype(np.float32)
    np.testing.assert_allclose(audio.to_mono(y), y.mean(axis=1), rtol=1e-6, atol=1e-7)
    assert audio.to_mono(y).dtype == np.float32


def test_to_mono_stereo_halves_and_passes_1d():
    y = np.array([[1.0, 0.0], [0.5, -0.5], [0.2, 0.4]], dtype=np.float32)
    np.testing.assert_allclose(audio.to_mono(y), [0.5, 0.0, 0.3], atol=1e-7)
    mono = np.arange(4, dtype=np.float32)
    assert audio.to_mono(mono) is mono


@pytest.mark.parametrize("orig_sr", SAMPLE_RATES)
def test_resample_length_and_frequency(orig_sr):
    target = 16000
    y = tone(1.0, orig_sr, freq=440.0).astype(np.float32)
    out = audio.resample(y, orig_sr=orig_sr, target_sr=target)
    assert abs(len(out) - len(y) * target / orig_sr) <= 1
    assert out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out[2000:-2000] * np.hanning(len(out) - 4000)))
    peak = np.argmax(spectrum) * target / (len(out) - 4000)
    assert peak == pytest.approx(440.0, abs=2.0)
    # Amplitude is preserved away from the edges.
    assert np.abs(out[2000:-2000]).max() == pytest.approx(0.5, abs=0.01)


def test_resample_identity_when_rates_equal():
    y = tone(0.1, 16000).astype(np.float32)
    assert audio.resample(y, orig_sr=16000, target_sr=16000) is y


def test_resample_removes_content_above_new_nyquist():
    y = tone(1.0, 44100, freq=12000.0).astype(np.float32)
    out = audio.resample(y, orig_sr=44100, target_sr=16000)
    assert np.abs(out[1000:-1000]).max() < 1e-3


# --- envelope -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 200, 1001])
@pytest.mark.parametrize("envelope_ms", [1, 4, 5, 50])
def test_envelope_matches_pandas_centred_rolling_max(rng, n, envelope_ms):
    sr = 1000  # window of envelope_ms samples: odd, even, and longer than the signal
    y = rng.standard_normal(n).astype(np.float32)
    w = round(sr * envelope_ms / 1000)
    naive = pd.Series(np.abs(y)).rolling(window=w, min_periods=1, center=True).max().to_numpy()
    got = audio.envelope(y, sample_rate=sr, envelope_ms=envelope_ms)
    np.testing.assert_array_equal(got, naive.astype(np.float32))


def test_envelope_of_empty_signal():
    assert audio.envelope(np.zeros(0, np.float32), sample_rate=16000, envelope_ms=50).shape == (0,)


@pytest.mark.parametrize("level_db, kept", [(-70.0, False), (-64.0, True), (-20.0, True)])
def test_envelope_mask_threshold_in_dbfs(level_db, kept):
    y = np.full(1000, 10 ** (level_db / 20), dtype=np.float32)
    mask = audio.envelope_mask(y, sample_rate=16000, envelope_ms=50, threshold_db=-64.3)
    assert mask.all() if kept else not mask.any()


@pytest.mark.parametrize("threshold_db", [20 * np.log10(0.5), 20 * np.log10(0.25), -64.3])
def test_envelope_exactly_at_the_threshold_is_dropped(threshold_db):
    """The mask is strictly greater than: a sample whose envelope equals the threshold is dropped."""
    amplitude = audio.db_to_amplitude(threshold_db)
    at = np.full(1000, amplitude, dtype=np.float64)  # float64: the envelope equals the threshold exactly
    assert audio.envelope(at, sample_rate=16000, envelope_ms=5).max() == amplitude
    assert not audio.envelope_mask(at, sample_rate=16000, envelope_ms=5, threshold_db=threshold_db).any()
    above = np.full(1000, np.nextafter(amplitude, 1.0))
    assert audio.envelope_mask(above, sample_rate=16000, envelope_ms=5, threshold_db=threshold_db).all()


def test_prepare_of_a_signal_exactly_at_the_threshold_is_silent():
    """Through the float32 pipeline too: -6.0206 dBFS is exactly 0.5, which float32 holds exactly."""
    threshold_db = 20 * np.log10(0.5)
    assert audio.db_to_amplitude(threshold_db) == 0.5
    config = {**CONFIG, "threshold_db": threshold_db}
    at = np.full(20000, 0.5, dtype=np.float32)
    at[::2] = -0.5  # |y| is 0.5 everywhere
    assert audio.prepare(at, 16000, **config).shape == (0, 16000)
    above = at * np.float32(1 + 2**-20)
    assert audio.prepare(above, 16000, **config).shape == (1, 16000)


def test_envelope_mask_keeps_margin_around_a_click():
    y = np.zeros(16000, dtype=np.float32)
    y[8000] = 0.5
    mask = audio.envelope_mask(y, sample_rate=16000, envelope_ms=50, threshold_db=-60)
    # Centred like pandas: sample i sees [i - 400, i + 399], so the click lights 7601..8400.
    assert np.array_equal(np.flatnonzero(mask), np.arange(7601, 8401))


# --- windows ------------------------------------------------------------------------------


@pytest.mark.parametrize("sr", SAMPLE_RATES)
@pytest.mark.parametrize("seconds, k", [(0.3, 1), (1.0, 1), (2.5, 2), (3.0, 3)])
def test_windows_count_and_content(rng, sr, seconds, k):
    n = sr  # delta_time 1 s
    y = rng.standard_normal(round(seconds * sr)).astype(np.float32)
    out = audio.windows(y, sample_rate=sr, delta_time=1.0)
    assert out.shape == (k, n) and out.dtype == np.float32
    if len(y) < n:
        np.testing.assert_array_equal(out[0, : len(y)], y)
        assert not out[0, len(y) :].any()
    else:
        np.testing.assert_array_equal(out.ravel(), y[: k * n])


def test_windows_empty_and_rounding():
    assert audio.windows(np.zeros(0, np.float32), sample_rate=16000, delta_time=1.0).shape == (0, 16000)
    assert audio.windows(np.ones(30000), sample_rate=22050, delta_time=0.5).shape == (2, 11025)
    assert audio.windows(np.ones(10), sample_rate=16000, delta_time=0.0000625).shape == (10, 1)


def test_windows_returns_a_copy():
    y = np.ones(32000, np.float32)
    out = audio.windows(y, sample_rate=16000, delta_time=1.0)
    out[:] = 0
    assert y.all()


@pytest.mark.parametrize("delta_time", [0.0, -1.0, 1e-6])
def test_windows_refuses_empty_window(delta_time):
    with pytest.raises(ParameterError, match="clean.delta_time"):
        audio.windows(np.ones(10), sample_rate=16000, delta_time=delta_time)


# --- prepare ------------------------------------------------------------------------------


@pytest.mark.parametrize("sr", SAMPLE_RATES)
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_prepare_shape_for_any_input(sr, channels):
    y = tone(2.5, sr, channels=channels).astype(np.float32)
    out = audio.prepare(y, sr, **CONFIG)
    assert out.shape == (2, 16000) and out.dtype == np.float32


def test_prepare_silent_note_gives_no_windows():
    out = audio.prepare(np.zeros((44100, 2), np.float32), 44100, **CONFIG)
    assert out.shape == (0, 16000)


def test_prepare_short_note_is_padded_to_one_window():
    y = np.concatenate([np.zeros(22050), tone(0.3, 44100), np.zeros(22050)]).astype(np.float32)
    out = audio.prepare(y, 44100, **CONFIG)
    assert out.shape == (1, 16000)
    loud = np.flatnonzero(np.abs(out[0]) > 1e-3)
    # 0.3 s of tone plus the envelope's 25 ms margin either side, then zeros.
    assert 0.3 * 16000 <= loud[-1] + 1 <= 0.36 * 16000
    assert not out[0, round(0.36 * 16000) :].any()


def test_prepare_drops_silent_gaps_and_joins_loud_parts():
    sr = 16000
    y = np.concatenate([tone(0.8, sr), np.zeros(sr), tone(0.8, sr), np.zeros(sr)]).astype(np.float32)
    out = audio.prepare(y, sr, **CONFIG)
    # 1.6 s of tone + 3 margins of 25 ms (none before the first, which starts at 0) -> one window.
    assert out.shape == (1, 16000)
    kept = audio.trim(y, sr, sample_rate=sr, threshold_db=-64.3, envelope_ms=50)
    assert len(kept) == pytest.approx(1.675 * sr, abs=5)


def test_prepare_is_windows_of_trim(rng):
    y = (rng.standard_normal((70000, 2)) * 0.1).astype(np.float32)
    y[20000:50000] = 0
    kept = audio.trim(y, 44100, sample_rate=16000, threshold_db=-64.3, envelope_ms=50)
    np.testing.assert_array_equal(
        audio.prepare(y, 44100, **CONFIG), audio.windows(kept, sample_rate=16000, delta_time=1.0)
    )


def test_prepare_stereo_with_equal_channels_equals_mono():
    y = tone(1.5, 44100).astype(np.float32)
    np.testing.assert_allclose(
        audio.prepare(np.stack([y, y], axis=1), 44100, **CONFIG), audio.prepare(y, 44100, **CONFIG), atol=1e-7
    )


def test_prepare_accepts_clean_settings_as_keywords():
    config = CleanSettings(sample_rate=8000, delta_time=0.5, threshold_db=-50.0, envelope_ms=20)
    out = audio.prepare(tone(1.2, 22050), 22050, **config.model_dump())
    assert out.shape == (2, config.window_length) and config.window_length == 4000


@pytest.mark.parametrize("delta_time", [0, -1.0])
def test_prepare_refuses_an_empty_window(delta_time):
    with pytest.raises(ParameterError, match="clean.delta_time"):
        audio.prepare(tone(1.0, 16000), 16000, **{**CONFIG, "delta_time": delta_time})


@pytest.mark.parametrize("sr", [0, -16000, 16000.0, "16000"])
def test_prepare_refuses_bad_input_rate(sr):
    with pytest.raises(ParameterError, match="sr must be"):
        audio.prepare(tone(1.0, 16000), sr, **CONFIG)


def test_prepare_refuses_nan():
    y = tone(1.0, 16000)
    y[10] = np.nan
    with pytest.raises(DataError, match="NaN"):
        audio.prepare(y, 16000, **CONFIG)


# --- 16-bit output ------------------------------------------------------------------------


def test_to_pcm16_round_trips_and_clips(tmp_path):
    pcm = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    sf.write(tmp_path / "a.wav", pcm, 16000, subtype="PCM_16")
    y, _ = audio.load(tmp_path / "a.wav")
    back, clipped = audio.to_pcm16(y[:, 0])
    np.testing.assert_array_equal(back, pcm)
    assert clipped == 0
    back, clipped = audio.to_pcm16(np.array([1.5, -2.0, 0.5], np.float32))
    np.testing.assert_array_equal(back, [32767, -32768, 16384])
    assert clipped == 2


@pytest.mark.parametrize("sr", [8000, 16000, 44100])
def test_write_pcm16_matches_soundfile(tmp_path, rng, sr):
    y = rng.uniform(-1.2, 1.2, 1001).astype(np.float32)
    clipped = audio.write_pcm16(tmp_path / "ours.wav", y, sample_rate=sr)
    pcm, expected_clipped = audio.to_pcm16(y)
    sf.write(tmp_path / "theirs.wav", pcm, sr, subtype="PCM_16")
    assert (tmp_path / "ours.wav").read_bytes() == (tmp_path / "theirs.wav").read_bytes()
    assert clipped == expected_clipped > 0
    back, got_sr = sf.read(tmp_path / "ours.wav", dtype="int16")
    assert got_sr == sr
    np.testing.assert_array_equal(back, pcm)


# --- streaming ----------------------------------------------------------------------------


def bursts(seconds, sr, *, rng, channels=1):
    """Noise bursts of varied level separated by silences, so the mask flips many times."""
    y = 0.1 * rng.standard_normal((round(seconds * sr), channels))
    for start in range(0, len(y), round(0.37 * sr)):
        y[start : start + round(rng.uniform(0.05, 0.2) * sr)] = 0
    y[round(0.3 * sr) : round(0.6 * sr)] *= 0.003  # near the threshold
    return y.astype(np.float32)


def streamed(path, block_frames, **config):
    parts = list(audio.stream_windows(path, **config, block_frames=block_frames))
    assert all(p.ndim == 2 and len(p) >= 1 and p.dtype == np.float32 for p in parts)
    return np.concatenate(parts) if parts else np.zeros((0, round(config["sample_rate"] * config["delta_time"])), np.float32)


@pytest.mark.parametrize("sr", [1000, 8000, 16000, 44100, 192000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("block_frames", [997, 4096, audio.BLOCK_FRAMES])
def test_streaming_equals_prepare_of_the_whole_file(tmp_path, rng, sr, channels, block_frames):
    """Many blocks (soxr's stream resampler, envelope carried over) give prepare's windows bit for bit."""
    y = bursts(5.3, sr, rng=rng, channels=channels)
    sf.write(tmp_path / "a.wav", y, sr, subtype="FLOAT")
    config = {"sample_rate": 8000, "threshold_db": -50.0, "envelope_ms": 50, "delta_time": 0.5}
    expected = audio.prepare(*audio.load(tmp_path / "a.wav"), **config)
    assert len(expected) >= 3
    np.testing.assert_array_equal(streamed(tmp_path / "a.wav", block_frames, **config), expected)


@pytest.mark.parametrize("envelope_ms", [0.1, 50, 400])
def test_streaming_with_one_frame_blocks_and_any_envelope(tmp_path, rng, envelope_ms):
    y = bursts(2.2, 8000, rng=rng)
    sf.write(tmp_path / "a.flac", y, 8000, subtype="PCM_24")
    config = {"sample_rate": 16000, "threshold_db": -40.0, "envelope_ms": envelope_ms, "delta_time": 0.25}
    expected = audio.prepare(*audio.load(tmp_path / "a.flac"), **config)
    np.testing.assert_array_equal(streamed(tmp_path / "a.flac", 1, **config), expected)


@pytest.mark.parametrize("seconds, windows", [(0.2, 1), (0.0, 0)])
def test_streaming_pads_a_short_file_and_skips_a_silent_one(tmp_path, seconds, windows):
    y = np.concatenate([tone(seconds, 44100), np.zeros(44100)]).astype(np.float32)
    sf.write(tmp_path / "a.wav", y, 44100, subtype="PCM_16")
    got = streamed(tmp_path / "a.wav", 1000, **CONFIG)
    assert got.shape == (windows, 16000)
    np.testing.assert_array_equal(got, audio.prepare(*audio.load(tmp_path / "a.wav"), **CONFIG))


@pytest.mark.parametrize(
    "kind, reason",
    [("empty file", "empty"), ("text renamed .wav", "not readable as audio"), ("truncated", "truncated"),
     ("zero frames", "no audio samples"), ("NaN samples", "NaN"), ("500 Hz", "outside")],
)
def test_streaming_raises_what_load_raises(tmp_path, kind, reason):
    path = tmp_path / "bad.wav"
    _write_bad(path, kind)
    with pytest.raises(DataError) as info:
        list(audio.stream_windows(path, **CONFIG, block_frames=64))
    assert str(path) in str(info.value) and reason in str(info.value)


def test_streaming_keeps_memory_bounded(tmp_path, monkeypatch):
    """A long file is never read whole: each read asks for at most block_frames frames."""
    sr = 8000
    with sf.SoundFile(tmp_path / "long.wav", "w", sr, 2, subtype="PCM_16") as f:
        for _ in range(60):
            f.write(np.repeat(tone(1.0, sr)[:, None], 2, axis=1))
    sizes = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        sizes.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    config = {"sample_rate": 8000, "threshold_db": -50.0, "envelope_ms": 50, "delta_time": 1.0}
    largest = max(len(w) for w in audio.stream_windows(tmp_path / "long.wav", **config, block_frames=4000))
    assert max(sizes) == 4000 and -1 not in sizes and len(sizes) >= 120
    assert largest <= 1  # windows come out as they are formed, never all at once


def test_streaming_refuses_a_bad_block_size(tmp_path):
    with pytest.raises(ParameterError, match="block_frames"):
        list(audio.stream_windows(tmp_path / "x.wav", **CONFIG, block_frames=0))


# --- edges and properties (issue 24) ------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def test_to_pcm16_rounds_to_the_nearest_step_not_towards_zero():
    """0.6 of a step is 1 step, -0.6 is -1, 1.4 is 1: truncation would give 0, 0 and 1."""
    step = 1 / 32768
    pcm, clipped = audio.to_pcm16(np.array([0.6, -0.6, 1.4, -1.4, 32766.7, -32767.7]) * step)
    np.testing.assert_array_equal(pcm, [1, -1, 1, -1, 32767, -32768])
    assert clipped == 0


@settings(max_examples=60)
@given(
    pcm=st.lists(st.integers(-32768, 32767), min_size=1, max_size=50),
    offsets=st.lists(st.floats(-0.49, 0.49), min_size=50, max_size=50),
)
def test_to_pcm16_is_the_nearest_16_bit_value(pcm, offsets):
    """Any sample within half a step of a 16-bit value converts to that value."""
    pcm = np.array(pcm, dtype=np.int64)
    y = (pcm + np.array(offsets[: len(pcm)])) / 32768
    y = np.clip(y, -1.0, 32767 / 32768)  # beyond full scale is clipping, tested above
    got, clipped = audio.to_pcm16(y)
    np.testing.assert_array_equal(got, pcm)
    assert clipped == 0


def _chunk(cid: bytes, payload: bytes) -> bytes:
    """A RIFF chunk: id, little-endian size, payload and RIFF's pad byte after an odd size."""
    return cid + len(payload).to_bytes(4, "little") + payload + (b"\0" if len(payload) % 2 else b"")


def _wav_with_odd_chunk_first(samples: np.ndarray, *, sr=8000, truncate=0) -> bytes:
    """A 16-bit mono WAV with a 3-byte chunk (so a pad byte) before its data chunk; ``truncate`` bytes cut off the end."""
    fmt = _chunk(b"fmt ", np.array([1, 1], "<u2").tobytes() + np.array([sr, 2 * sr], "<u4").tobytes()
                 + np.array([2, 16], "<u2").tobytes())
    body = b"WAVE" + fmt + _chunk(b"junk", b"abc") + _chunk(b"data", samples.astype("<i2").tobytes())
    data = b"RIFF" + len(body).to_bytes(4, "little") + body
    return data[: len(data) - truncate] if truncate else data


def test_a_wav_with_an_odd_sized_chunk_before_its_data_loads(tmp_path):
    samples = (np.arange(400) * 37 % 2000 - 1000).astype(np.int16)
    path = tmp_path / "odd.wav"
    path.write_bytes(_wav_with_odd_chunk_first(samples))
    y, sr = audio.load(path)
    assert sr == 8000
    np.testing.assert_array_equal(np.round(y[:, 0] * 32768).astype(np.int16), samples)


@pytest.mark.parametrize("truncate", [2, 100, 798])
def test_a_truncated_wav_after_an_odd_sized_chunk_is_named(tmp_path, truncate):
    """The chunk walk honours the pad byte after the 3-byte chunk, so it still finds "data" and sees the cut."""
    path = tmp_path / "cut.wav"
    path.write_bytes(_wav_with_odd_chunk_first(np.ones(400, np.int16), truncate=truncate))
    with pytest.raises(DataError, match=rf"cut\.wav: truncated WAV: header declares 800 bytes of audio, file holds {800 - truncate}"):
        audio.load(path)
    with pytest.raises(DataError, match="truncated WAV"):
        list(audio.stream_windows(path, **CONFIG))


SUBTYPE_STEP = {"PCM_U8": 2 / 256, "PCM_16": 1 / 32768, "PCM_24": 2**-23, "PCM_32": 2**-31, "FLOAT": 0.0, "DOUBLE": 0.0}


@settings(max_examples=40)
@given(
    sr=st.integers(audio.MIN_SAMPLE_RATE, audio.MAX_SAMPLE_RATE),
    channels=st.integers(1, 8),
    frames=st.integers(1, 3000),
    subtype=st.sampled_from(sorted(SUBTYPE_STEP)),
    seed=st.integers(0, 2**16),
)
def test_load_reads_any_rate_channel_count_length_and_sample_format(tmp_path_factory, sr, channels, frames, subtype, seed):
    """What was written comes back: shape (frames, channels), float32, the rate, each sample within a step.

    (libsndfile writes floats as integers scaled by 2**(bits-1) - 1 and reads them back
    divided by 2**(bits-1): up to one step apart, whoever reads.)"""
    y = np.random.default_rng(seed).uniform(-1.0, 0.99, size=(frames, channels))
    path = tmp_path_factory.mktemp("load") / "a.wav"
    sf.write(path, y, sr, subtype=subtype)
    got, got_sr = audio.load(path)
    assert got_sr == sr and got.shape == (frames, channels) and got.dtype == np.float32
    np.testing.assert_allclose(got, y, atol=SUBTYPE_STEP[subtype] + 1e-6)


@settings(max_examples=60)
@given(
    frames=st.integers(0, 500),
    channels=st.integers(1, 6),
    dtype=st.sampled_from(["int16", "int32", "float32", "float64"]),
    seed=st.integers(0, 2**16),
)
def test_to_mono_is_the_channel_mean_for_any_dtype(frames, channels, dtype, seed):
    rng = np.random.default_rng(seed)
    if dtype.startswith("int"):
        y = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, size=(frames, channels), dtype=dtype, endpoint=True)
    else:
        y = rng.uniform(-1, 1, size=(frames, channels)).astype(dtype)
    mono = audio.to_mono(y)
    assert mono.shape == (frames,)
    assert mono.dtype == (np.float32 if dtype.startswith("int") else np.dtype(dtype))
    np.testing.assert_allclose(mono, y.astype(np.float64).mean(axis=1), rtol=1e-6, atol=1e-6 * (np.abs(y).max(initial=1)))


@settings(max_examples=40)
@given(
    orig_sr=st.sampled_from([1000, 8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000, 384000]),
    target_sr=st.sampled_from([8000, 16000, 22050, 44100, 48000]),
    n=st.integers(0, 4000),
)
def test_resample_gives_the_documented_length_for_any_pair_of_rates(orig_sr, target_sr, n):
    y = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    out = audio.resample(y, orig_sr=orig_sr, target_sr=target_sr)
    assert out.ndim == 1 and len(out) == round(n * target_sr / orig_sr)
    assert np.isfinite(out).all()


@settings(max_examples=80)
@given(
    n_samples=st.integers(0, 5000),
    sr=st.sampled_from([8000, 16000, 22050, 44100]),
    delta_time=st.sampled_from([0.01, 0.1, 0.25, 0.5, 1.0]),
)
def test_windows_cut_every_whole_window_in_order_and_pad_only_a_short_signal(n_samples, sr, delta_time):
    y = np.arange(1, n_samples + 1, dtype=np.float32)  # every sample distinct and non-zero
    n = audio.window_samples(sample_rate=sr, delta_time=delta_time)
    cut = audio.windows(y, sample_rate=sr, delta_time=delta_time)
    if n_samples == 0:
        assert cut.shape == (0, n)
    elif n_samples < n:
        assert cut.shape == (1, n)
        np.testing.assert_array_equal(cut[0, :n_samples], y)
        assert not cut[0, n_samples:].any()
    else:
        assert cut.shape == (n_samples // n, n)
        np.testing.assert_array_equal(cut.ravel(), y[: cut.size])  # nothing reordered, skipped or repeated


@settings(max_examples=25)
@given(
    sr=st.sampled_from([1000, 8000, 16000, 44100]),
    channels=st.integers(1, 3),
    seconds=st.floats(0.0, 0.35),
    block_frames=st.integers(16, 5000),
    seed=st.integers(0, 2**16),
)
def test_streaming_equals_prepare_for_any_file_and_block_size(tmp_path_factory, sr, channels, seconds, block_frames, seed):
    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * sr))
    y = rng.uniform(-0.5, 0.5, size=(n, channels)) * (rng.uniform(size=(n, 1)) > 0.5)  # loud and silent stretches
    path = tmp_path_factory.mktemp("stream") / "a.wav"
    sf.write(path, y, sr, subtype="FLOAT")
    config = {"sample_rate": 8000, "threshold_db": -40.0, "envelope_ms": 5, "delta_time": 0.1}
    whole = audio.prepare(*audio.load(path), **config)
    blocks = list(audio.stream_windows(path, block_frames=block_frames, **config))
    streamed = np.concatenate(blocks) if blocks else np.zeros((0, 800), np.float32)
    np.testing.assert_array_equal(streamed, whole)


# Mutation run (benchmarks/mutation.py): cases beside the tested ones that mutants survived.


@pytest.mark.parametrize("block_frames", [2.5, "64", None])
def test_stream_windows_refuses_a_block_size_that_is_not_an_integer(tmp_path, block_frames):
    sf.write(tmp_path / "x.wav", tone(0.1, 16000), 16000, subtype="PCM_16")
    with pytest.raises(ParameterError, match="block_frames must be an integer >= 1"):
        list(audio.stream_windows(tmp_path / "x.wav", **CONFIG, block_frames=block_frames))


def test_stream_windows_sees_the_envelopes_left_neighbours_across_every_block_end(tmp_path):
    """An even envelope window (3.5 ms at 1 kHz: 4 samples, 2 before each sample) and blocks of one frame."""
    y = np.full(400, 1e-4)
    y[::7] = 0.5  # sparse spikes: a quiet sample is kept only through a loud neighbour within the window
    sf.write(tmp_path / "x.wav", y, 1000, subtype="FLOAT")
    config = {"sample_rate": 1000, "threshold_db": -40.0, "envelope_ms": 3.5, "delta_time": 0.01}
    whole = audio.prepare(*audio.load(tmp_path / "x.wav"), **config)
    streamed = np.concatenate(list(audio.stream_windows(tmp_path / "x.wav", **config, block_frames=1)))
    assert len(whole) > 0 and np.array_equal(streamed, whole)


def test_pcm16_counts_exactly_the_samples_beyond_its_range():
    full_scale = 1.0  # +32768 does not fit: clipped to 32767; -32768 fits
    pcm, clipped = audio.to_pcm16(np.array([full_scale, -full_scale, 32767 / 32768, -32769 / 32768, 0.0]))
    assert pcm.tolist() == [32767, -32768, 32767, -32768, 0] and clipped == 2


def test_write_pcm16_refuses_stereo_naming_the_shape(tmp_path):
    with pytest.raises(ParameterError) as info:
        audio.write_pcm16(tmp_path / "x.wav", np.zeros((10, 2)), sample_rate=16000)
    assert str(info.value) == "y must be mono with shape (n_samples,), got (10, 2)"
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize("subtype", ["DOUBLE", "PCM_32"])
def test_streaming_equals_prepare_for_stereo_beyond_float32_precision(tmp_path, subtype):
    """Channels are rounded to float32 before they are averaged, in both paths (not averaged first)."""
    y = np.random.default_rng(3).uniform(-0.9, 0.9, (16000 + 300, 2))
    sf.write(tmp_path / "x.wav", y, 16000, subtype=subtype)
    whole = audio.prepare(*audio.load(tmp_path / "x.wav"), **CONFIG)
    streamed = np.concatenate(list(audio.stream_windows(tmp_path / "x.wav", **CONFIG, block_frames=4096)))
    assert np.array_equal(streamed, whole)


def test_a_read_error_half_way_through_a_stream_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "x.wav"
    sf.write(path, tone(3.0, 16000), 16000, subtype="PCM_16")
    real_read, calls = sf.SoundFile.read, []

    def failing_read(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("Error : unexpected end of file")  # what a cut network file gives mid-way
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", failing_read)
    with pytest.raises(DataError) as info:
        list(audio.stream_windows(path, **CONFIG, block_frames=16000))
    assert str(info.value) == f"{path}: not readable as audio (Error : unexpected end of file)"


def test_trim_names_non_finite_audio():
    with pytest.raises(DataError) as info:
        audio.trim(np.array([0.1, np.nan], np.float32), 16000, sample_rate=16000, threshold_db=-60.0, envelope_ms=50)
    assert str(info.value) == "audio contains NaN or infinite samples"


@pytest.mark.parametrize("endian", ["LITTLE", "BIG"], ids=["RIFF", "RIFX"])
def test_a_truncated_wav_is_named_in_either_byte_order(tmp_path, endian):
    """RIFX is RIFF with big-endian sizes: its chunk walk reads them big-endian and still sees the cut."""
    path = tmp_path / "cut.wav"
    sf.write(path, np.full(400, 0.25), 8000, subtype="PCM_16", endian=endian)
    data = path.read_bytes()
    assert data[:4] == (b"RIFF" if endian == "LITTLE" else b"RIFX")
    assert audio.load(path)[0].shape == (400, 1)
    path.write_bytes(data[:-100])
    with pytest.raises(DataError, match=r"cut\.wav: truncated WAV: header declares 800 bytes of audio, file holds 700"):
        audio.load(path)



def test_a_silent_note_gives_no_windows_of_the_usual_shape_and_type():
    cut = audio.prepare(np.zeros((8000, 1), np.float32), 16000, **CONFIG)
    assert cut.shape == (0, 16000) and cut.dtype == np.float32


def test_windows_refuses_stereo_naming_the_shape():
    with pytest.raises(ParameterError) as info:
        audio.windows(np.zeros((10, 2), np.float32), sample_rate=16000, delta_time=1.0)
    assert str(info.value) == "y must be mono with shape (n_samples,), got (10, 2)"


def test_to_mono_gives_float32_for_integer_mono_and_names_a_bad_shape():
    mono = audio.to_mono(np.array([1, -2, 3], np.int16))
    assert mono.dtype == np.float32 and mono.tolist() == [1.0, -2.0, 3.0]
    with pytest.raises(ParameterError) as info:
        audio.to_mono(np.zeros((4, 2, 1)))
    assert str(info.value) == "y must have shape (n_samples,) or (n_samples, n_channels), got (4, 2, 1)"


def test_to_mono_averages_float32_channels_in_double_precision():
    """The mean is rounded to float32 once, not summed in float32 (which drifts a last bit)."""
    y = np.random.default_rng(5).uniform(-1, 1, (2000, 3)).astype(np.float32)
    mono = audio.to_mono(y)
    assert mono.dtype == np.float32 and np.array_equal(mono, y.astype(np.float64).mean(axis=1).astype(np.float32))


def _wav_declaring(data_size, *, payload=b"", data_chunk=True):
    import struct

    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + fmt + ((b"data" + struct.pack("<I", data_size) + payload) if data_chunk else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("declared", [1, 0x90000000, 0xFFFFFFFE])
def test_a_data_chunk_declaring_more_than_the_file_holds_is_named_truncated(tmp_path, declared):
    path = tmp_path / "cut.wav"
    path.write_bytes(_wav_declaring(declared))
    with pytest.raises(DataError, match=rf"truncated WAV: header declares {declared} bytes of audio, file holds 0"):
        audio.load(path)


def test_a_wav_of_unknown_length_or_without_data_is_not_called_truncated(tmp_path):
    path = tmp_path / "stream.wav"
    path.write_bytes(_wav_declaring(0xFFFFFFFF, payload=np.ones(800, np.int16).tobytes()))  # a streaming writer's header
    try:
        audio.load(path)  # read, or refused by libsndfile: either way not called truncated by the chunk walk
    except DataError as exc:
        assert "truncated" not in str(exc)
    path.write_bytes(_wav_declaring(0, data_chunk=False))
    with pytest.raises(DataError) as info:  # no data chunk: libsndfile's refusal, named, not a crash of the walk
        audio.load(path)
    assert str(path) in str(info.value) and "truncated" not in str(info.value)


def test_an_odd_sized_data_chunk_without_its_pad_byte_is_not_called_truncated(tmp_path):
    """Many writers leave out the pad byte after an odd-sized last chunk: every sample is still there."""
    import struct

    samples = (np.arange(401) % 256).astype(np.uint8)  # 8-bit PCM, one byte a sample: 401 bytes of data
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
    body = b"WAVE" + fmt + b"data" + struct.pack("<I", len(samples)) + samples.tobytes()  # no pad byte after it
    path = tmp_path / "odd.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    y, sr = audio.load(path)
    assert sr == 8000 and y.shape == (401, 1)


# Hostile mutants, round 7 (benchmarks/hostile_mutants/round7): cases beside the tested ones.


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_file_refused_for_its_rate_is_closed(tmp_path):
    """Files at a refused rate: each is named and closed at once, not when its error is collected
    (a classify of thousands keeping its errors would run out of descriptors)."""
    import os

    sf.write(tmp_path / "slow.wav", np.zeros(100, np.int16), audio.MIN_SAMPLE_RATE - 1, subtype="PCM_16")
    before = len(os.listdir("/proc/self/fd"))
    kept = []  # errors kept for a summary at the end (their tracebacks hold the reader's frame)
    for _ in range(20):
        with pytest.raises(DataError, match="slow.wav: sample rate 999 Hz") as info:
            audio.load(tmp_path / "slow.wav")
        kept.append(info.value)
    assert len(os.listdir("/proc/self/fd")) == before
