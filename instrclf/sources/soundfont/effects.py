"""What turns a plain SoundFont render into a recording: each note's seeded variation and the effects.

A plain render is far too easy to classify (the same sample at a few gains), so every note
gets its own :class:`Variation`: detune, vibrato where the instrument plays it, note and
release length, onset delay, peak level, a bowed string's body, a short synthetic room, an
EQ tilt and background noise at a random SNR. A note's numbers come from a seed sequence
keyed by the global seed and the note's identity (:attr:`Note.key`), never by the order of
work, so the same seed gives the same note whatever the number of workers, and a note sounds
the same in a subset as in the full set.
"""

from dataclasses import dataclass

import numpy as np
import scipy.fft

from ...instruments import BY_ABBR

#: Seconds over which vibrato fades in after the onset, as players do.
_VIBRATO_RAMP = 0.3

#: Seconds of fade-out at the end of a file, so truncated tails do not click.
_FADE = 0.01

#: Lowest frequency (Hz) the EQ tilt and the noise colour are shaped down to.
_F_FLOOR = 40.0

#: Pivot frequency (Hz) of the EQ tilt: gain is 0 dB here.
_TILT_PIVOT = 1000.0

#: Body resonances of a violin: (Hz, relative gain, width in octaves): the air mode A0,
#: the two main wood modes B1- and B1+, and the broad "bridge hill". Gains are scaled so
#: the largest is ``data.soundfont.body_db``.
_VIOLIN_BODY = ((275.0, 1.0, 0.12), (460.0, 0.8, 0.10), (540.0, 0.9, 0.10), (2500.0, 0.9, 0.45))

#: Body size relative to a violin: the resonances sit this factor lower. TimGM6mb plays the
#: viola from the violin's own samples, so without a body the two are the same sound.
BODY_SCALE = {"Vn": 1.0, "Va": 0.82, "Vc": 0.40, "Cb": 0.25}


@dataclass(frozen=True)
class Variation:
    """One note's drawn variation: everything :func:`finish` needs besides the raw render.

    Attributes
    ----------
    on_frames, off_frames : int     Frames held before note-off, and kept after it.
    onset_frames : int              Frames of room noise before the note starts.
    detune_cents : float            Tuning offset of the synthesiser's channel.
    vibrato_cents, vibrato_hz, vibrato_phase : float   Vibrato depth (0: none), rate, phase.
    level_db : float                Peak level of the file (dBFS, before noise).
    reverb_seconds, reverb_mix : float                 The room's RT60 and wet share.
    snr_db, noise_color : float     Background noise below the held note's RMS, and its colour.
    tilt_db_per_octave : float      EQ slope around 1 kHz.
    body_scale, body_db : float     A bowed string's body (0: none); see :func:`body_gain`.
    noise_seed : int                Seeds the room's impulse response and the background noise.
    """

    on_frames: int
    off_frames: int
    onset_frames: int
    detune_cents: float
    vibrato_cents: float
    vibrato_hz: float
    vibrato_phase: float
    level_db: float
    reverb_seconds: float
    reverb_mix: float
    snr_db: float
    noise_color: float
    tilt_db_per_octave: float
    body_scale: float
    body_db: float
    noise_seed: int

    @property
    def frames(self) -> int:
        """Length of the finished file: onset, held note and release."""
        return self.onset_frames + self.on_frames + self.off_frames


def variation(note, *, seed: int, settings) -> Variation:
    """Draw one note's variation from a generator keyed by the seed and the note's identity.

    Parameters
    ----------
    note : Note
        The note; :attr:`Note.key` (library position, instrument, pitch, dynamics, string)
        keys the generator, its fold does not.
    seed : int
        The global seed.
    settings : SoundfontSettings
        The ranges drawn from (``data.soundfont``).

    Returns
    -------
    Variation
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, *note.key)))
    sr = settings.sample_rate

    def uniform(span):
        lo, hi = span
        return float(rng.uniform(lo, hi))

    on = round(uniform(settings.note_seconds) * sr)
    off = round(uniform(settings.release_seconds) * sr)
    onset = round(uniform(settings.onset_seconds) * sr)
    detune = float(rng.uniform(-1, 1)) * settings.detune_cents
    vibrato_cents = uniform(settings.vibrato_cents)
    vibrato_hz = uniform(settings.vibrato_hz)
    vibrato_phase = float(rng.uniform(0, 2 * np.pi))
    level = uniform(settings.level_db)
    reverb_seconds = uniform(settings.reverb_seconds)
    reverb_mix = uniform(settings.reverb_mix)
    snr = uniform(settings.snr_db)
    color = uniform(settings.noise_color)
    tilt = float(rng.uniform(-1, 1)) * settings.tilt_db_per_octave
    body_scale = BODY_SCALE.get(note.abbr, 0.0) * float(np.exp2(rng.uniform(-1, 1) * settings.body_jitter))
    return Variation(
        on_frames=on,
        off_frames=off,
        onset_frames=onset,
        detune_cents=detune,
        vibrato_cents=vibrato_cents if BY_ABBR[note.abbr].vibrato else 0.0,
        vibrato_hz=vibrato_hz,
        vibrato_phase=vibrato_phase,
        level_db=level,
        reverb_seconds=reverb_seconds,
        reverb_mix=reverb_mix,
        snr_db=snr,
        noise_color=color,
        tilt_db_per_octave=tilt,
        body_scale=body_scale,
        body_db=float(settings.body_db) if note.abbr in BODY_SCALE else 0.0,
        noise_seed=int(rng.integers(2**63)),
    )


def time_warp(x: np.ndarray, *, cents: np.ndarray) -> np.ndarray:
    """Resample ``x`` with a time-varying pitch shift (vibrato), by linear interpolation.

    Parameters
    ----------
    x : numpy.ndarray
        Input samples; must be a little longer than the output where the shift is upward.
    cents : numpy.ndarray
        Pitch shift of each output sample.

    Returns
    -------
    numpy.ndarray
        ``len(cents)`` float32 samples.
    """
    ratio = np.exp2(cents / 1200.0)
    position = np.concatenate([[0.0], np.cumsum(ratio[:-1])])
    return np.interp(position, np.arange(len(x)), x).astype(np.float32)


def body_gain(freqs: np.ndarray, *, scale: float, gain_db: float) -> np.ndarray:
    """Magnitude response of a bowed string's body: violin resonances moved by ``scale``.

    Parameters
    ----------
    freqs : numpy.ndarray
        Frequencies in Hz.
    scale : float
        Body size relative to a violin (resonance frequencies are multiplied by it).
    gain_db : float
        Gain of the strongest resonance; 0 gives a flat response.

    Returns
    -------
    numpy.ndarray
        Linear gain per frequency (Gaussian bumps on a log-frequency axis).
    """
    octaves = np.log2(np.maximum(freqs, _F_FLOOR))
    db = np.zeros_like(octaves)
    if gain_db > 0 and scale > 0:
        for hz, weight, width in _VIOLIN_BODY:
            db += gain_db * weight * np.exp(-0.5 * ((octaves - np.log2(hz * scale)) / width) ** 2)
    return 10.0 ** (db / 20.0)


def room_and_tilt(x: np.ndarray, *, sample_rate: int, rng, reverb_seconds: float, reverb_mix: float, tilt_db_per_octave: float, body_scale: float = 0.0, body_db: float = 0.0) -> np.ndarray:
    """Apply a string body, a synthetic room and an EQ tilt in one FFT, keeping ``len(x)``.

    Parameters
    ----------
    x : numpy.ndarray
        Dry signal.
    sample_rate : int
        Hz.
    rng : numpy.random.Generator
        Draws the impulse response's noise.
    reverb_seconds : float
        RT60 of the exponentially decaying noise impulse response.
    reverb_mix : float
        Wet share: ``(1 - mix) * dry + mix * wet``, the wet part at the dry part's energy.
    tilt_db_per_octave : float
        Gain slope around 1 kHz.
    body_scale, body_db : float
        See :func:`body_gain`; 0 leaves the body out.

    Returns
    -------
    numpy.ndarray
        Processed samples, same length as ``x``.
    """
    length = max(1, round(reverb_seconds * sample_rate))
    t = np.arange(length) / sample_rate
    ir = rng.standard_normal(length) * np.exp(-6.9078 * t / reverb_seconds)
    ir *= reverb_mix / np.sqrt(np.sum(ir**2))
    ir[0] += 1.0 - reverb_mix
    n = scipy.fft.next_fast_len(len(x) + length - 1, real=True)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    tilt = 10.0 ** (tilt_db_per_octave * np.log2(np.maximum(freqs, _F_FLOOR) / _TILT_PIVOT) / 20.0)
    shape = tilt * body_gain(freqs, scale=body_scale, gain_db=body_db)
    spectrum = scipy.fft.rfft(x, n) * scipy.fft.rfft(ir, n) * shape
    return scipy.fft.irfft(spectrum, n)[: len(x)]


def colored_noise(n: int, *, rng, sample_rate: int, color: float) -> np.ndarray:
    """Gaussian noise whose power falls as ``1 / f**color`` (0 white, 1 pink, 2 brown), unit RMS.

    Parameters
    ----------
    n : int
        Samples.
    rng : numpy.random.Generator
        Source of the noise.
    sample_rate : int
        Hz.
    color : float
        Spectral exponent.

    Returns
    -------
    numpy.ndarray
        ``n`` samples with RMS 1.
    """
    size = scipy.fft.next_fast_len(n, real=True)
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    shape = (np.maximum(freqs, _F_FLOOR) / _TILT_PIVOT) ** (-color / 2.0)
    noise = scipy.fft.irfft(scipy.fft.rfft(rng.standard_normal(size)) * shape, size)[:n]
    return noise / max(np.sqrt(np.mean(noise**2)), 1e-12)


def finish(raw: np.ndarray, *, variation: Variation, sample_rate: int) -> np.ndarray:
    """Turn a raw synth render into the file's samples: vibrato, onset, body, room, tilt, level, noise.

    Parameters
    ----------
    raw : numpy.ndarray
        The synthesiser's output, at least ``on_frames + off_frames`` long (a little more
        where vibrato reads ahead).
    variation : Variation
        The note's variation; the same variation and raw render give the same samples.
    sample_rate : int
        Hz.

    Returns
    -------
    numpy.ndarray
        ``variation.frames`` float64 samples in [-1, 32767/32768].
    """
    v = variation
    n_note = v.on_frames + v.off_frames
    if v.vibrato_cents > 0:
        t = np.arange(n_note) / sample_rate
        depth = v.vibrato_cents * np.minimum(1.0, t / _VIBRATO_RAMP)
        note = time_warp(raw, cents=depth * np.sin(2 * np.pi * v.vibrato_hz * t + v.vibrato_phase))
    else:
        note = raw[:n_note]
    x = np.concatenate([np.zeros(v.onset_frames), note.astype(np.float64)])
    rng = np.random.default_rng(v.noise_seed)
    y = room_and_tilt(
        x,
        sample_rate=sample_rate,
        rng=rng,
        reverb_seconds=v.reverb_seconds,
        reverb_mix=v.reverb_mix,
        tilt_db_per_octave=v.tilt_db_per_octave,
        body_scale=v.body_scale,
        body_db=v.body_db,
    )
    fade = min(len(y), max(1, round(_FADE * sample_rate)))
    y[-fade:] *= np.linspace(1.0, 0.0, fade)
    y *= 10.0 ** (v.level_db / 20.0) / max(np.max(np.abs(y)), 1e-12)
    held = y[v.onset_frames : v.onset_frames + v.on_frames]
    rms = np.sqrt(np.mean(held**2)) if len(held) else 0.0
    noise = colored_noise(len(y), rng=rng, sample_rate=sample_rate, color=v.noise_color)
    y += noise * rms / 10.0 ** (v.snr_db / 20.0)
    return np.clip(y, -1.0, 32767 / 32768)
