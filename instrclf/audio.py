"""Signal functions shared by the clean stage (and its threshold image), the SoundFont renderer and the command-line classifier.

The one windowing entry point is :func:`prepare`: mono, resample, envelope threshold,
fixed-length windows (it is ``windows(trim(...))``). The clean stage cuts every window that
train and predict read this way, and ``instrclf classify`` cuts a new recording with the
same function and the same four values (``clean.*``, stored in each model's card), so a
model never sees audio cut differently. This module holds signal functions and audio file
reading and writing only; settings live in :mod:`instrclf.settings`.
"""

import numbers
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import DataError, ParameterError

#: Sample rates accepted on input (Hz, inclusive): anything from telephone to 384 kHz studio audio.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384000

#: 16-bit PCM full scale, the same factor libsndfile uses when it reads PCM_16 as float.
_PCM16_SCALE = 32768


def window_samples(*, sample_rate, delta_time) -> int:
    """Number of samples in one window.

    Parameters
    ----------
    sample_rate : int
        Sample rate in Hz.
    delta_time : float
        Window length in seconds.

    Returns
    -------
    int
        ``round(sample_rate * delta_time)``, at least 1.
    """
    n = round(sample_rate * delta_time)
    if n < 1:
        raise ParameterError(
            f"clean.delta_time must give at least one sample per window, got {delta_time!r} s at {sample_rate} Hz"
        )
    return n


def _check_riff(path: Path, size: int):
    """Raise DataError if a RIFF/RIFX WAV declares more audio data than the file holds.

    libsndfile reads a truncated WAV without complaint (it shortens the frame count), so
    the header's ``data`` chunk size is compared with the bytes that are really there.
    """
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return
        fmt = "<I" if head[:4] == b"RIFF" else ">I"
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk = f.read(8)
            chunk_size = struct.unpack(fmt, chunk[4:])[0]
            if chunk[:4] == b"data":
                available = size - offset - 8
                # 0 and 0xFFFFFFFF mean "unknown" (streaming writers, RF64-style headers).
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    raise DataError(
                        f"{path}: truncated WAV: header declares {chunk_size} bytes of audio, file holds {available}"
                    )
                return
            offset += 8 + chunk_size + (chunk_size & 1)


def _open(path) -> sf.SoundFile:
    """Open an audio file for reading after the checks :func:`load` makes before reading.

    Raises DataError naming the file: missing or unreadable, empty, a truncated WAV, not
    audio, or a sample rate outside 1-384 kHz.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        _check_riff(path, size)
        f = sf.SoundFile(path)
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise DataError(f"{path}: not readable as audio ({exc})") from None
    if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
        f.close()
        raise DataError(f"{path}: sample rate {f.samplerate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    return f


def load(path):
    """Read an audio file as float32 samples.

    Parameters
    ----------
    path : str or Path
        Any file libsndfile reads: WAV with 8/16/24/32-bit integer or 32/64-bit float
        samples, FLAC, OGG, any number of channels, 1-384 kHz.

    Returns
    -------
    y : np.ndarray, float32, shape (n_samples, n_channels)
        Samples, integer formats scaled to [-1, 1).
    sr : int
        Sample rate in Hz.

    Raises
    ------
    DataError
        Naming the file and the reason: unreadable, not audio, empty, truncated,
        NaN/infinite samples, or a sample rate outside 1-384 kHz.
    """
    path = Path(path)
    with _open(path) as f:
        try:
            y = f.read(dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, OSError) as exc:
            raise DataError(f"{path}: not readable as audio ({exc})") from None
        sr = f.samplerate
    if y.shape[0] == 0:
        raise DataError(f"{path}: no audio samples")
    if not np.isfinite(y).all():
        raise DataError(f"{path}: contains NaN or infinite samples")
    return y, int(sr)


def to_mono(y):
    """Average all channels into one.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,) or (n_samples, n_channels)
        Samples; 1-D input is already mono.

    Returns
    -------
    np.ndarray, shape (n_samples,)
        The mean over channels, in the input's float dtype (float32 for integer input).
    """
    y = np.asarray(y)
    if y.ndim == 1:
        return y if y.dtype.kind == "f" else y.astype(np.float32)
    if y.ndim != 2:
        raise ParameterError(f"y must have shape (n_samples,) or (n_samples, n_channels), got {y.shape}")
    dtype = y.dtype if y.dtype.kind == "f" else np.float32
    if y.shape[1] == 1:
        return y[:, 0].astype(dtype, copy=False)
    return y.mean(axis=1, dtype=np.float64).astype(dtype, copy=False)


def resample(y, *, orig_sr, target_sr):
    """Resample a mono signal with soxr's high-quality filter (librosa's default).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono samples.
    orig_sr, target_sr : int
        Sample rates in Hz.

    Returns
    -------
    np.ndarray, shape (round(n_samples * target_sr / orig_sr),)
        Resampled signal; ``y`` itself when the rates are equal.
    """
    if orig_sr == target_sr:
        return y
    if len(y) == 0:
        return y[:0]
    return soxr.resample(y, orig_sr, target_sr, quality="HQ")


def envelope(y, *, sample_rate, envelope_ms):
    """Centred rolling maximum of ``|y|``.

    Equals ``pandas.Series(abs(y)).rolling(w, min_periods=1, center=True).max()`` with
    ``w = max(1, round(sample_rate * envelope_ms / 1000))``, computed in O(n).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono samples.
    sample_rate : int
        Sample rate of ``y`` in Hz.
    envelope_ms : float
        Window length in milliseconds.

    Returns
    -------
    np.ndarray, shape (n_samples,)
        The envelope, same dtype as ``y``.
    """
    w = max(1, round(sample_rate * envelope_ms / 1000))
    a = np.abs(y)
    n = len(a)
    if n == 0 or w == 1:
        return a
    # Sample i's window is [i - w//2, i + w - 1 - w//2], as pandas centres it; zeros outside y
    # are neutral for a max of absolute values (pandas' min_periods=1). Shifted by w//2 into a
    # zero-padded copy cut into blocks of w, it is [i, i + w - 1]: the running max from i to
    # its block's end, and from the next block's start to i + w - 1 (van Herk / Gil-Werman).
    # Exact (a max rounds nothing), O(n) for any w, and numpy only: the classifier starts
    # without importing SciPy.
    blocks = -(-(n + w - 1) // w)
    padded = np.zeros(blocks * w, a.dtype)
    padded[w // 2 : w // 2 + n] = a
    padded = padded.reshape(blocks, w)
    forward = np.maximum.accumulate(padded, axis=1).ravel()
    backward = np.maximum.accumulate(padded[:, ::-1], axis=1)[:, ::-1].ravel()
    return np.maximum(backward[:n], forward[w - 1 : w - 1 + n])


def envelope_mask(y, *, sample_rate, envelope_ms, threshold_db):
    """Which samples are loud enough to keep.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono samples, full scale 1.0.
    sample_rate : int
        Sample rate of ``y`` in Hz.
    envelope_ms : float
        Rolling-max window of the envelope in milliseconds.
    threshold_db : float
        Threshold in dBFS.

    Returns
    -------
    np.ndarray of bool, shape (n_samples,)
        True where the envelope exceeds ``10 ** (threshold_db / 20)``.
    """
    return envelope(y, sample_rate=sample_rate, envelope_ms=envelope_ms) > db_to_amplitude(threshold_db)


def db_to_amplitude(db):
    """Linear amplitude (full scale 1.0) of a level in dBFS: ``10 ** (db / 20)``."""
    return 10.0 ** (db / 20.0)


def windows(y, *, sample_rate, delta_time):
    """Cut a signal into consecutive non-overlapping windows.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono samples.
    sample_rate : int
        Sample rate of ``y`` in Hz.
    delta_time : float
        Window length in seconds; ``n = round(sample_rate * delta_time)`` samples.

    Returns
    -------
    np.ndarray, shape (k, n)
        A new array. ``k = len(y) // n`` and the remainder is dropped, except that a
        non-empty signal shorter than one window is zero-padded to exactly one window;
        empty input gives shape ``(0, n)``.
    """
    n = window_samples(sample_rate=sample_rate, delta_time=delta_time)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"y must be mono with shape (n_samples,), got {y.shape}")
    if len(y) == 0:
        return np.zeros((0, n), dtype=y.dtype)
    if len(y) < n:
        out = np.zeros((1, n), dtype=y.dtype)
        out[0, : len(y)] = y
        return out
    k = len(y) // n
    return y[: k * n].reshape(k, n).copy()


def trim(y, sr, *, sample_rate, threshold_db, envelope_ms):
    """Mono, resample and keep only the samples whose envelope exceeds the threshold.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,) or (n_samples, n_channels)
        Samples as returned by :func:`load`, full scale 1.0.
    sr : int
        Sample rate of ``y`` in Hz.
    sample_rate : int
        Target sample rate in Hz.
    threshold_db : float
        Envelope threshold in dBFS.
    envelope_ms : float
        Rolling-max window of the envelope in milliseconds.

    Returns
    -------
    np.ndarray, float32, shape (n_kept,)
        The loud samples at ``sample_rate``, joined end to end (the classic ``y[mask]``).
    """
    if isinstance(sr, bool) or not isinstance(sr, numbers.Integral) or sr <= 0:
        raise ParameterError(f"sr must be a positive integer sample rate, got {sr!r}")
    mono = to_mono(y).astype(np.float32, copy=False)
    if not np.isfinite(mono).all():
        raise DataError("audio contains NaN or infinite samples")
    mono = resample(mono, orig_sr=int(sr), target_sr=sample_rate)
    return mono[envelope_mask(mono, sample_rate=sample_rate, envelope_ms=envelope_ms, threshold_db=threshold_db)]


def prepare(y, sr, *, sample_rate, threshold_db, envelope_ms, delta_time):
    """Turn a recording into model-ready windows: mono, resample, envelope threshold, windows.

    The single windowing entry point shared by clean, predict and the classifier;
    it is ``windows(trim(y, sr, ...), ...)``.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,) or (n_samples, n_channels)
        Samples as returned by :func:`load`, full scale 1.0.
    sr : int
        Sample rate of ``y`` in Hz.
    sample_rate, threshold_db, envelope_ms, delta_time
        The fields of :class:`instrclf.settings.CleanSettings`
        (``prepare(y, sr, **clean.model_dump())``).

    Returns
    -------
    np.ndarray, float32, shape (k, round(sample_rate * delta_time))
        The windows, cut from the samples whose envelope exceeds the threshold, joined
        end to end. ``k = 0`` for a silent recording; a short one is zero-padded to one
        window.
    """
    kept = trim(y, sr, sample_rate=sample_rate, threshold_db=threshold_db, envelope_ms=envelope_ms)
    return windows(kept, sample_rate=sample_rate, delta_time=delta_time)


#: Frames read from a file at a time by :func:`stream_windows` (1.5 s at 44.1 kHz).
BLOCK_FRAMES = 2**16


def stream_windows(path, *, sample_rate, threshold_db, envelope_ms, delta_time, block_frames=BLOCK_FRAMES):
    """:func:`prepare` of an audio file, read and cut block by block in bounded memory.

    Yields exactly the windows of ``prepare(*load(path), ...)``, bit for bit, however long
    the file: each block of ``block_frames`` frames is made mono and resampled with soxr's
    streaming resampler (whose output does not depend on where the blocks end), and each
    resampled sample is kept or dropped once the envelope window around it has been
    read, so the threshold sees the same neighbours as on the whole signal.
    Memory is O(block_frames * channels + window + envelope), not O(file length).

    Parameters
    ----------
    path : str or Path
        Any file :func:`load` reads.
    sample_rate, threshold_db, envelope_ms, delta_time
        The fields of :class:`instrclf.settings.CleanSettings`.
    block_frames : int
        Frames read at a time (>= 1).

    Yields
    ------
    np.ndarray, float32, shape (k, round(sample_rate * delta_time))
        The next ``k >= 1`` windows, in order. Nothing for a silent file; a short one gives
        one zero-padded window at the end.

    Raises
    ------
    DataError
        As :func:`load` (raised when the bad part is reached: windows may already have
        been yielded).
    """
    if isinstance(block_frames, bool) or not isinstance(block_frames, numbers.Integral) or block_frames < 1:
        raise ParameterError(f"block_frames must be an integer >= 1, got {block_frames!r}")
    n = window_samples(sample_rate=sample_rate, delta_time=delta_time)
    w = max(1, round(sample_rate * envelope_ms / 1000))
    before, after = w // 2, w - 1 - w // 2  # the envelope of sample i looks at [i - before, i + after]
    amplitude = db_to_amplitude(threshold_db)
    path = Path(path)
    with _open(path) as f:
        sr = f.samplerate
        stream = None if sr == sample_rate else soxr.ResampleStream(sr, sample_rate, 1, dtype="float32", quality="HQ")
        context = np.zeros(0, np.float32)  # up to `before` decided samples: left neighbours of the next ones
        pending = np.zeros(0, np.float32)  # resampled samples still waiting for their right neighbours
        kept = np.zeros(0, np.float32)  # loud samples not yet filling a window
        frames = emitted = 0
        last = False
        while not last:
            try:
                block = f.read(block_frames, dtype="float32", always_2d=True)
            except (sf.SoundFileError, RuntimeError, OSError) as exc:
                raise DataError(f"{path}: not readable as audio ({exc})") from None
            last = len(block) == 0
            frames += len(block)
            if not np.isfinite(block).all():
                raise DataError(f"{path}: contains NaN or infinite samples")
            mono = to_mono(block).astype(np.float32, copy=False)
            if stream is not None:
                mono = stream.resample_chunk(mono, last=last)
            if frames == 0:
                raise DataError(f"{path}: no audio samples")
            signal = np.concatenate([context, pending, mono])
            start = len(context)
            stop = len(signal) if last else max(start, len(signal) - after)
            loud = envelope(signal, sample_rate=sample_rate, envelope_ms=envelope_ms)[start:stop] > amplitude
            kept = np.concatenate([kept, signal[start:stop][loud]])
            context, pending = signal[max(0, stop - before) : stop], signal[stop:]
            k = len(kept) // n
            if k:
                yield kept[: k * n].reshape(k, n).copy()
                kept = kept[k * n :]
                emitted += k
        if emitted == 0 and len(kept):
            yield windows(kept, sample_rate=sample_rate, delta_time=delta_time)


def to_pcm16(y):
    """Float samples (full scale 1.0) as 16-bit integers, rounded and clipped.

    Parameters
    ----------
    y : np.ndarray
        Float samples.

    Returns
    -------
    pcm : np.ndarray of int16
        ``clip(round(y * 32768), -32768, 32767)``: exact for audio read from PCM_16.
    clipped : int
        Number of samples that were clipped.
    """
    scaled = np.round(np.asarray(y, dtype=np.float64) * _PCM16_SCALE)
    clipped = int(np.count_nonzero((scaled > 32767) | (scaled < -32768)))
    return np.clip(scaled, -32768, 32767).astype(np.int16), clipped


def write_pcm16(path, y, *, sample_rate):
    """Write mono float samples as a canonical 16-bit PCM WAV (44-byte header), in one write.

    The bytes equal what soundfile writes for ``subtype="PCM_16"``, without libsndfile's
    fsync on close, which dominates the cost of writing thousands of 1-s windows.

    Parameters
    ----------
    path : str or Path
        The file to write.
    y : np.ndarray, shape (n_samples,)
        Float samples, full scale 1.0 (converted with :func:`to_pcm16`).
    sample_rate : int
        Sample rate in Hz.

    Returns
    -------
    int
        Number of samples that were clipped.
    """
    if np.ndim(y) != 1:
        raise ParameterError(f"y must be mono with shape (n_samples,), got {np.shape(y)}")
    pcm, clipped = to_pcm16(y)
    data = pcm.astype("<i2", copy=False).tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(data), b"WAVE",
        b"fmt ", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16,
        b"data", len(data),
    )
    with open(path, "wb") as f:
        f.write(header + data)
    return clipped
