"""The ``soundfont`` source: a TinySOL-shaped set of notes rendered offline from SoundFonts.

Every TinySOL note (instrument, pitch, dynamics, and for bowed strings every string that
can play the pitch) is played on the matching General MIDI program of each SoundFont with
``tinysoundfont``; each SoundFont is one more instance of every note (``Instance ID``).
TimGM6mb, shipped inside the ``pretty_midi`` package, is always instance 0; the soundfonts
named in ``data.soundfont.soundfonts`` are instances 1, 2, ...

A plain render is far too easy to classify (the same sample at a few gains), so every note
gets its own seeded variation: detune, vibrato where the instrument plays it, note and
release length, onset delay, peak level, a short synthetic room, an EQ tilt and background
noise at a random SNR. A note's random numbers come from a seed sequence keyed by the
global ``seed`` and the note's identity (instance, instrument, pitch, dynamics, string),
never by the order of work, so the same seed gives byte-identical files and CSV whatever
the number of workers, and a note sounds the same in a subset as in the full set.

File names follow TinySOL: ``<abbr>-ord-<pitch>-<dyn>-<string>-<tag>.wav`` under
``<Family>/<Instrument>/ordinario/``, where ``<string>`` is ``1c``..``4c`` for bowed
strings (1 = highest) and ``N`` otherwise, and ``<tag>`` is ``N`` for instance 0 and
``I<k>`` for instance ``k``.
"""

import csv
import importlib.util
import logging
import math
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft
import soundfile as sf
from tqdm import tqdm

from ..errors import DataError, ParameterError
from ..io import atomic_file
from ..params import number, span
from ..tinysol import BY_ABBR, DYNAMICS_ID, INSTRUMENTS, METADATA_COLUMNS, N_FOLDS, pitch_name

log = logging.getLogger(__name__)

#: Dynamics rendered, and the MIDI velocity that plays each.
VELOCITY = {"pp": 40, "mf": 80, "ff": 120}

#: A raw render whose peak stays below this (dBFS) is a key the SoundFont cannot play.
SILENT_DB = -90.0

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

#: Every key of ``data.soundfont``; any other key is refused so a typo is not ignored.
KEYS = (
    "soundfonts",
    "max_notes_per_instrument",
    "string_span_semitones",
    "jobs",
    "sample_rate",
    "note_seconds",
    "release_seconds",
    "onset_seconds",
    "detune_cents",
    "vibrato_cents",
    "vibrato_hz",
    "level_db",
    "reverb_seconds",
    "reverb_mix",
    "snr_db",
    "noise_color",
    "tilt_db_per_octave",
    "body_db",
    "body_jitter",
)

_PREFIX = "data.soundfont"


@dataclass(frozen=True)
class Note:
    """One planned file.

    Attributes
    ----------
    abbr : str        Instrument abbreviation (``tinysol.BY_ABBR`` key).
    midi : int        MIDI pitch.
    dynamics : str    ``pp``, ``mf`` or ``ff``.
    string : int      String number 1-4 (1 = highest) for bowed strings, 0 otherwise.
    instance : int    SoundFont index: 0 is TimGM6mb, k the k-th of ``soundfonts``.
    fold : int        Cross-validation fold 0-4.
    """

    abbr: str
    midi: int
    dynamics: str
    string: int
    instance: int
    fold: int = -1

    @property
    def path(self) -> str:
        """The file's path inside ``audio/``, TinySOL style."""
        inst = BY_ABBR[self.abbr]
        string = f"{self.string}c" if self.string else "N"
        tag = f"I{self.instance}" if self.instance else "N"
        name = f"{self.abbr}-ord-{pitch_name(self.midi)}-{self.dynamics}-{string}-{tag}.wav"
        return f"{inst.folder}/ordinario/{name}"

    @property
    def key(self) -> tuple:
        """Integers that identify the note whatever the plan around it (seeds its randomness)."""
        return (self.instance, _INDEX[self.abbr], self.midi, DYNAMICS_ID[self.dynamics], self.string)


_INDEX = {inst.abbr: i for i, inst in enumerate(INSTRUMENTS)}


# --------------------------------------------------------------------------- settings


def default_soundfont() -> Path:
    """Path of TimGM6mb.sf2 inside the installed ``pretty_midi`` package (never imported).

    Returns
    -------
    Path
        The SoundFont file.
    """
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("TimGM6mb.sf2 ships with the pretty_midi package, which is not installed")
    path = Path(spec.submodule_search_locations[0]) / "TimGM6mb.sf2"
    if not path.is_file():
        raise DataError(f"TimGM6mb.sf2 not found in the pretty_midi package: {path}")
    return path


def check_settings(settings: dict) -> dict:
    """Validate ``data.soundfont`` and return it with defaults filled and soundfonts resolved.

    Parameters
    ----------
    settings : dict
        ``params["data"]["soundfont"]``.

    Returns
    -------
    dict
        The checked values; spans become ``(min, max)`` tuples, ``soundfonts`` a list of
        paths with TimGM6mb first, ``jobs`` an int.
    """
    if not isinstance(settings, dict):
        raise ParameterError(f"{_PREFIX} must be a mapping, got {settings!r}")
    unknown = sorted(set(settings) - set(KEYS))
    if unknown:
        raise ParameterError(f"{_PREFIX} has unknown key(s) {unknown}; expected some of {list(KEYS)}")
    missing = [k for k in KEYS if k not in settings and k != "jobs"]
    if missing:
        raise ParameterError(f"{_PREFIX} lacks the key(s) {missing}")

    def key(name):
        return f"{_PREFIX}.{name}"

    out = {}
    fonts = settings["soundfonts"]
    if fonts is None:
        fonts = []
    if not isinstance(fonts, (list, tuple)):
        raise ParameterError(f"{key('soundfonts')} must be a list of .sf2/.sf3 paths, got {fonts!r}")
    out["soundfonts"] = [default_soundfont()]
    for i, font in enumerate(fonts):
        name = f"{key('soundfonts')}[{i}]"
        if not isinstance(font, str) or not font:
            raise ParameterError(f"{name} must be a path to a .sf2/.sf3 file, got {font!r}")
        path = Path(font).expanduser()
        if path.suffix.lower() not in (".sf2", ".sf3"):
            raise ParameterError(f"{name} must name a .sf2 or .sf3 file, got {font!r}")
        if not path.is_file():
            raise ParameterError(f"{name}: SoundFont file not found: {path}")
        out["soundfonts"].append(path)

    limit = settings["max_notes_per_instrument"]
    out["max_notes_per_instrument"] = (
        None if limit is None else number(key("max_notes_per_instrument"), limit, low=1, integer=True)
    )
    out["string_span_semitones"] = number(
        key("string_span_semitones"), settings["string_span_semitones"], low=0, high=60, integer=True
    )
    jobs = settings.get("jobs")
    out["jobs"] = (os.cpu_count() or 1) if jobs is None else number(key("jobs"), jobs, low=1, integer=True)
    out["sample_rate"] = number(key("sample_rate"), settings["sample_rate"], low=8000, high=192000, integer=True)
    out["note_seconds"] = span(key("note_seconds"), settings["note_seconds"], low=0.01, high=60)
    out["release_seconds"] = span(key("release_seconds"), settings["release_seconds"], low=0, high=10)
    out["onset_seconds"] = span(key("onset_seconds"), settings["onset_seconds"], low=0, high=10)
    out["detune_cents"] = number(key("detune_cents"), settings["detune_cents"], low=0, high=100)
    out["vibrato_cents"] = span(key("vibrato_cents"), settings["vibrato_cents"], low=0, high=100)
    out["vibrato_hz"] = span(key("vibrato_hz"), settings["vibrato_hz"], low=0.1, high=20)
    out["level_db"] = span(key("level_db"), settings["level_db"], low=-80, high=0)
    out["reverb_seconds"] = span(key("reverb_seconds"), settings["reverb_seconds"], low=0.01, high=10)
    out["reverb_mix"] = span(key("reverb_mix"), settings["reverb_mix"], low=0, high=1)
    out["snr_db"] = span(key("snr_db"), settings["snr_db"], low=-20, high=120)
    out["noise_color"] = span(key("noise_color"), settings["noise_color"], low=0, high=2)
    out["tilt_db_per_octave"] = number(key("tilt_db_per_octave"), settings["tilt_db_per_octave"], low=0, high=24)
    out["body_db"] = number(key("body_db"), settings["body_db"], low=0, high=24)
    out["body_jitter"] = number(key("body_jitter"), settings["body_jitter"], low=0, high=0.5)
    return out


# --------------------------------------------------------------------------- the plan


def string_pitches(*, open_pitches: tuple, low: int, high: int, span_semitones: int) -> list:
    """Pairs ``(midi, string)`` a bowed instrument plays: each string from open to ``span`` above.

    Parameters
    ----------
    open_pitches : tuple of int
        Open-string MIDI pitches, string 1 (highest) first.
    low, high : int
        The instrument's MIDI range (inclusive); the highest string reaches up to ``high``.
    span_semitones : int
        How far above its open pitch a string is played.

    Returns
    -------
    list of tuple
        ``(midi, string)`` sorted by pitch then string.
    """
    pairs = []
    top = max(open_pitches)
    for number_, open_ in enumerate(open_pitches, start=1):
        stop = high if open_ == top else min(high, open_ + span_semitones)
        pairs += [(midi, number_) for midi in range(max(low, open_), stop + 1)]
    return sorted(pairs)


def plan(*, seed: int, n_instances: int = 1, string_span_semitones: int = 24, max_notes_per_instrument=None) -> list:
    """Every note to render, with its fold, sorted by path.

    Parameters
    ----------
    seed : int
        Seeds the fold offsets.
    n_instances : int
        Number of SoundFonts; each plays every note once.
    string_span_semitones : int
        See :func:`string_pitches`.
    max_notes_per_instrument : int or None
        Keep at most this many notes per instrument, evenly spread (:func:`spread`).

    Returns
    -------
    list of Note
    """
    offsets = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))).integers(
        N_FOLDS, size=len(INSTRUMENTS)
    )
    notes = []
    for inst, offset in zip(INSTRUMENTS, offsets):
        if inst.strings:
            pairs = string_pitches(
                open_pitches=inst.strings, low=inst.low, high=inst.high, span_semitones=string_span_semitones
            )
        else:
            pairs = [(midi, 0) for midi in range(inst.low, inst.high + 1)]
        rows = [
            Note(inst.abbr, midi, dyn, string, instance)
            for dyn in sorted(VELOCITY, key=DYNAMICS_ID.get)
            for midi, string in pairs
            for instance in range(n_instances)
        ]
        rows = assign_folds(rows, offset=int(offset))
        if max_notes_per_instrument is not None:
            rows = spread(rows, k=max_notes_per_instrument)
        notes += rows
    return sorted(notes, key=lambda note: note.path)


def assign_folds(notes: list, *, offset: int) -> list:
    """Deal folds round-robin over notes sorted by dynamics, pitch, string and instance.

    Parameters
    ----------
    notes : list of Note
        One instrument's notes.
    offset : int
        Fold of the first note.

    Returns
    -------
    list of Note
        The same notes in that order, each with its fold: fold sizes differ by at most one
        and every fold walks the whole pitch range at every dynamics.
    """
    ordered = sorted(notes, key=lambda n: (DYNAMICS_ID[n.dynamics], n.midi, n.string, n.instance))
    return [
        Note(n.abbr, n.midi, n.dynamics, n.string, n.instance, (offset + i) % N_FOLDS)
        for i, n in enumerate(ordered)
    ]


def spread(notes: list, *, k: int) -> list:
    """An evenly spread subset of one instrument's notes, balanced over the folds.

    Parameters
    ----------
    notes : list of Note
        Output of :func:`assign_folds` (sorted by dynamics, pitch, string, instance).
    k : int
        How many to keep.

    Returns
    -------
    list of Note
        ``min(k, len(notes))`` notes: fold counts differ by at most one, and the picks
        walk the dynamics/pitch order evenly (slot ``i`` of ``k`` sits near ``(i + 0.5) / k``).
    """
    if k >= len(notes):
        return list(notes)
    by_fold = {f: [n for n in notes if n.fold == f] for f in range(N_FOLDS)}
    # Larger folds take the extra picks, so no fold is asked for more notes than it has.
    ranked = sorted(by_fold, key=lambda f: (-len(by_fold[f]), f))
    picked = []
    for rank, fold in enumerate(ranked):
        members = by_fold[fold]
        slots = range(rank, k, N_FOLDS)
        previous = -1
        for t, slot in enumerate(slots):
            j = int((slot + 0.5) / k * len(members))
            j = min(max(j, previous + 1), len(members) - (len(slots) - t))
            picked.append(members[j])
            previous = j
    return picked


# --------------------------------------------------------------------------- one note


def variation(note: Note, *, seed: int, settings: dict) -> dict:
    """Draw one note's variation from its own seeded generator.

    Parameters
    ----------
    note : Note
        The note; its identity keys the generator.
    seed : int
        The global seed.
    settings : dict
        Output of :func:`check_settings`.

    Returns
    -------
    dict
        Scalars of the note (lengths in frames, cents, dB, ...) and ``rng``, the generator
        in the state the audio noise continues from.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, *note.key)))
    sr = settings["sample_rate"]
    vibrato = BY_ABBR[note.abbr].vibrato

    def uniform(name):
        lo, hi = settings[name]
        return float(rng.uniform(lo, hi))

    v = {
        "on_frames": round(uniform("note_seconds") * sr),
        "off_frames": round(uniform("release_seconds") * sr),
        "onset_frames": round(uniform("onset_seconds") * sr),
        "detune_cents": float(rng.uniform(-1, 1)) * settings["detune_cents"],
        "vibrato_cents": uniform("vibrato_cents"),
        "vibrato_hz": uniform("vibrato_hz"),
        "vibrato_phase": float(rng.uniform(0, 2 * np.pi)),
        "level_db": uniform("level_db"),
        "reverb_seconds": uniform("reverb_seconds"),
        "reverb_mix": uniform("reverb_mix"),
        "snr_db": uniform("snr_db"),
        "noise_color": uniform("noise_color"),
        "tilt_db_per_octave": float(rng.uniform(-1, 1)) * settings["tilt_db_per_octave"],
        "body_scale": BODY_SCALE.get(note.abbr, 0.0) * float(np.exp2(rng.uniform(-1, 1) * settings["body_jitter"])),
        "body_db": settings["body_db"] if note.abbr in BODY_SCALE else 0.0,
    }
    if not vibrato:
        v["vibrato_cents"] = 0.0
    v["rng"] = rng
    return v


def synthesize(synth, *, sfid: int, program: int, midi: int, velocity: int, detune_cents: float, on_frames: int, off_frames: int) -> np.ndarray:
    """Play one note on a ``tinysoundfont.Synth`` and return it as mono float32.

    Parameters
    ----------
    synth : tinysoundfont.Synth
        A synthesiser with the SoundFont loaded; it is left silent and reset afterwards,
        so the next note does not depend on this one.
    sfid : int
        SoundFont id from ``synth.sfload``.
    program : int
        General MIDI program, 0-based (bank 0).
    midi, velocity : int
        Key and velocity.
    detune_cents : float
        Channel tuning offset.
    on_frames, off_frames : int
        Frames before and after note-off.

    Returns
    -------
    numpy.ndarray
        ``on_frames + off_frames`` mono samples.
    """
    chan = 0
    synth.program_select(chan, sfid, 0, program)
    synth.set_tuning(chan, detune_cents / 100.0)
    synth.noteon(chan, midi, velocity)
    held = np.frombuffer(synth.generate(on_frames), dtype=np.float32) if on_frames else np.zeros(0, np.float32)
    synth.noteoff(chan, midi)
    tail = np.frombuffer(synth.generate(off_frames), dtype=np.float32) if off_frames else np.zeros(0, np.float32)
    synth.sounds_off()
    # sounds_off fades voices over a few ms: run them out so the next note starts clean.
    for _ in range(64):
        if not np.any(np.frombuffer(synth.generate(1024), dtype=np.float32)):
            break
    stereo = np.concatenate([held, tail]).reshape(-1, 2)
    return stereo.mean(axis=1, dtype=np.float32)


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
        ``len(cents)`` samples.
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


def finish(raw: np.ndarray, *, v: dict, sample_rate: int) -> np.ndarray:
    """Turn a raw synth render into the file's samples: vibrato, onset, room, tilt, level, noise.

    Parameters
    ----------
    raw : numpy.ndarray
        Output of :func:`synthesize`, a little longer than ``on_frames + off_frames``.
    v : dict
        Output of :func:`variation` (its ``rng`` is advanced).
    sample_rate : int
        Hz.

    Returns
    -------
    numpy.ndarray
        float64 samples in [-1, 1].
    """
    n_note = v["on_frames"] + v["off_frames"]
    if v["vibrato_cents"] > 0:
        t = np.arange(n_note) / sample_rate
        depth = v["vibrato_cents"] * np.minimum(1.0, t / _VIBRATO_RAMP)
        cents = depth * np.sin(2 * np.pi * v["vibrato_hz"] * t + v["vibrato_phase"])
        note = time_warp(raw, cents=cents)
    else:
        note = raw[:n_note]
    x = np.concatenate([np.zeros(v["onset_frames"]), note.astype(np.float64)])
    rng = v["rng"]
    y = room_and_tilt(
        x,
        sample_rate=sample_rate,
        rng=rng,
        reverb_seconds=v["reverb_seconds"],
        reverb_mix=v["reverb_mix"],
        tilt_db_per_octave=v["tilt_db_per_octave"],
        body_scale=v["body_scale"],
        body_db=v["body_db"],
    )
    fade = min(len(y), max(1, round(_FADE * sample_rate)))
    y[-fade:] *= np.linspace(1.0, 0.0, fade)
    y *= 10.0 ** (v["level_db"] / 20.0) / max(np.max(np.abs(y)), 1e-12)
    held = y[v["onset_frames"] : v["onset_frames"] + v["on_frames"]]
    rms = np.sqrt(np.mean(held**2)) if len(held) else 0.0
    noise = colored_noise(len(y), rng=rng, sample_rate=sample_rate, color=v["noise_color"])
    y += noise * rms / 10.0 ** (v["snr_db"] / 20.0)
    return np.clip(y, -1.0, 32767 / 32768)


def write_wav(path: Path, samples: np.ndarray, *, sample_rate: int) -> None:
    """Write mono 16-bit PCM, rounding to the nearest step (same samples -> same bytes).

    Parameters
    ----------
    path : Path
        Destination; parent folders are created.
    samples : numpy.ndarray
        Floats in [-1, 1).
    sample_rate : int
        Hz.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
    sf.write(path, pcm, sample_rate, subtype="PCM_16", format="WAV")


# --------------------------------------------------------------------------- workers

_STATE = {}


def _start(fonts: list, sample_rate: int) -> None:
    """Worker initialiser: one Synth per process with every SoundFont loaded."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    _STATE["synth"] = synth
    _STATE["sfids"] = [synth.sfload(str(font)) for font in fonts]


def _render_one(task) -> tuple:
    """Render and write one note; return ``(path, seconds)``, seconds 0 for a silent note."""
    note, seed, settings, audio_dir = task
    sr = settings["sample_rate"]
    v = variation(note, seed=seed, settings=settings)
    inst = BY_ABBR[note.abbr]
    # Vibrato can read up to a few % ahead of real time: render a little extra tail.
    extra = math.ceil((np.exp2(v["vibrato_cents"] / 1200.0) - 1.0) * (v["on_frames"] + v["off_frames"])) + 8
    raw = synthesize(
        _STATE["synth"],
        sfid=_STATE["sfids"][note.instance],
        program=inst.program,
        midi=note.midi,
        velocity=VELOCITY[note.dynamics],
        detune_cents=v["detune_cents"],
        on_frames=v["on_frames"],
        off_frames=v["off_frames"] + extra,
    )
    if not len(raw) or 20 * np.log10(max(float(np.max(np.abs(raw))), 1e-30)) < SILENT_DB:
        return note.path, 0.0
    y = finish(raw, v=v, sample_rate=sr)
    write_wav(Path(audio_dir) / note.path, y, sample_rate=sr)
    return note.path, len(y) / sr


def _progress(iterable, total=None):
    """A tqdm bar over rendered notes."""
    return tqdm(iterable, total=total, desc="render", unit="note", mininterval=1.0)


def metadata_row(note: Note) -> dict:
    """One TinySOL metadata row for a note.

    Parameters
    ----------
    note : Note

    Returns
    -------
    dict
        Column -> value, columns as in ``tinysol.METADATA_COLUMNS``.
    """
    inst = BY_ABBR[note.abbr]
    return {
        "Path": note.path,
        "Fold": note.fold,
        "Family": inst.family,
        "Instrument (abbr.)": inst.abbr,
        "Instrument (in full)": inst.name,
        "Technique (abbr.)": "ord",
        "Technique (in full)": "ordinario",
        "Pitch": pitch_name(note.midi),
        "Pitch ID": note.midi,
        "Dynamics": note.dynamics,
        "Dynamics ID": DYNAMICS_ID[note.dynamics],
        "Instance ID": note.instance,
        "String ID": note.string if note.string else "",
        "Resampled": False,
    }


def render(out_dir: Path, *, seed: int, settings: dict) -> dict:
    """Render the TinySOL-shaped set into ``out_dir`` (metadata CSV + ``audio/<Path>``).

    Parameters
    ----------
    out_dir : Path
        An empty folder (the caller swaps it into place atomically).
    seed : int
        The global seed; same seed and settings give byte-identical output.
    settings : dict
        ``params["data"]["soundfont"]``, validated here before anything is rendered.

    Returns
    -------
    dict
        ``notes_planned``, ``notes_rendered``, ``notes_silent``, ``audio_seconds``,
        ``wall_seconds``.
    """
    start = time.perf_counter()
    seed = number("seed", seed, low=0, integer=True)
    settings = check_settings(settings)
    out_dir = Path(out_dir)
    notes = plan(
        seed=seed,
        n_instances=len(settings["soundfonts"]),
        string_span_semitones=settings["string_span_semitones"],
        max_notes_per_instrument=settings["max_notes_per_instrument"],
    )
    audio_dir = out_dir / "audio"
    tasks = [(note, seed, settings, str(audio_dir)) for note in notes]
    jobs = max(1, min(settings["jobs"], len(tasks)))
    initargs = (settings["soundfonts"], settings["sample_rate"])
    if jobs == 1:
        _start(*initargs)
        try:
            results = [_render_one(task) for task in _progress(tasks)]
        finally:
            _STATE.clear()
    else:
        # fork where the platform has it: no re-import of __main__ (works from `python -c`)
        # and workers inherit the parent's modules as they are.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(jobs, initializer=_start, initargs=initargs) as pool:
            results = list(_progress(pool.imap(_render_one, tasks, chunksize=4), total=len(tasks)))
    seconds = dict(results)
    silent = [note.path for note in notes if seconds[note.path] == 0.0]
    if silent:
        log.info("skipped %d silent note(s): %s", len(silent), ", ".join(silent))
    kept = [note for note in notes if seconds[note.path] > 0.0]
    with atomic_file(out_dir / "TinySOL_metadata.csv", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METADATA_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(metadata_row(note) for note in kept)
    return {
        "notes_planned": len(notes),
        "notes_rendered": len(kept),
        "notes_silent": len(silent),
        "audio_seconds": round(sum(seconds.values()), 3),
        "wall_seconds": round(time.perf_counter() - start, 3),
    }
