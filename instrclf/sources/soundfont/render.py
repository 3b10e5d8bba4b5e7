"""Render the planned notes on every library with ``tinysoundfont``, in parallel, byte for byte reproducibly.

Each worker process holds one synthesiser with every library loaded; a note's audio depends
only on the seed, the note's identity and the library, never on which worker played it or
what it played before, so any number of jobs writes the same bytes.
"""

import logging
import math
import time
from pathlib import Path

import numpy as np

from ... import layout, parallel
from ...audio import write_pcm16
from ...errors import DataError
from ...instruments import BY_ABBR, DYNAMICS_ID, pitch_name
from . import libraries as libs
from . import timidity
from .effects import finish, variation
from .plan import VELOCITY, plan

log = logging.getLogger(__name__)

#: A raw render whose peak stays below this (dBFS) is a key the library cannot play.
SILENT_DB = -90.0

#: The synthesiser of this process: ``config`` (what it was built for), ``synth``, ``sfids``.
_STATE = {}


def synthesize(synth, *, sfid: int, program: int, midi: int, velocity: int, detune_cents: float, on_frames: int, off_frames: int) -> np.ndarray:
    """Play one note on a ``tinysoundfont.Synth`` and return it as mono float32.

    Parameters
    ----------
    synth : tinysoundfont.Synth
        A synthesiser with the library loaded; it is left silent and reset afterwards,
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
        ``on_frames + off_frames`` mono samples; all zeros when the library has no such
        program in bank 0.
    """
    chan = 0
    try:
        synth.program_select(chan, sfid, 0, program)
    except RuntimeError:  # tinysoundfont: the library has no such preset
        return np.zeros(on_frames + off_frames, np.float32)
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
    return (stereo[:, 0] + stereo[:, 1]) * np.float32(0.5)  # the channels' mean (ndarray.mean is 25x slower)


def _start(config: tuple) -> None:
    """Build this process's synthesiser for ``config = (paths, sample_rate, seed, settings, audio_dir)``.

    A no-op when it is already built for the same config: forked workers inherit the one
    the parent built, so each library is read from disk once.
    """
    if _STATE.get("config") == config:
        return
    import tinysoundfont

    paths, sample_rate = config[0], config[1]
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfids = []
    for path in paths:
        if Path(path).suffix.lower() == timidity.SUFFIX:
            sfids.append(None)  # played by timidity, note by note (render_note)
            continue
        try:
            sfids.append(synth.sfload(str(path)))
        except Exception as exc:  # tinysoundfont raises a bare Exception/RuntimeError on a corrupt file
            raise DataError(f"{path}: tinysoundfont cannot load this SoundFont ({exc})") from None
    _STATE.clear()
    _STATE.update(config=config, synth=synth, sfids=sfids)


def render_note(note) -> float:
    """Render and write one note with this process's synthesiser; return its seconds, 0.0 if silent."""
    _, sample_rate, seed, settings, audio_dir = _STATE["config"]
    v = variation(note, seed=seed, settings=settings)
    # Vibrato can read up to a few % ahead of real time: render a little extra tail.
    extra = math.ceil((np.exp2(v.vibrato_cents / 1200.0) - 1.0) * (v.on_frames + v.off_frames)) + 8
    sfid = _STATE["sfids"][note.instance]
    play = dict(
        program=BY_ABBR[note.abbr].program,
        midi=note.midi,
        velocity=VELOCITY[note.dynamics],
        detune_cents=v.detune_cents,
        on_frames=v.on_frames,
        off_frames=v.off_frames + extra,
    )
    if sfid is None:
        raw = timidity.synthesize(_STATE["config"][0][note.instance], sample_rate=sample_rate, **play)
    else:
        raw = synthesize(_STATE["synth"], sfid=sfid, **play)
    if not len(raw) or 20 * np.log10(max(float(np.max(np.abs(raw))), 1e-30)) < SILENT_DB:
        return 0.0
    y = finish(raw, variation=v, sample_rate=sample_rate)
    write_pcm16(Path(audio_dir) / note.path, y, sample_rate=sample_rate)
    return len(y) / sample_rate


def metadata_row(note, *, library: str) -> dict:
    """One TinySOL metadata row for a note, plus its ``Library``.

    Parameters
    ----------
    note : Note
    library : str
        Name of the library at position ``note.instance``.

    Returns
    -------
    dict
        Column -> value, columns as in ``layout.METADATA_COLUMNS`` then ``Library``.
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
        layout.LIBRARY_COLUMN: library,
    }


def render(out_dir, *, seed: int, settings, progress: bool = True) -> dict:
    """Render the TinySOL-shaped set on every library into ``out_dir`` (metadata CSV + ``audio/<Path>``).

    Parameters
    ----------
    out_dir : str or Path
        An empty folder (the caller swaps it into place atomically).
    seed : int
        The global seed; the same seed and settings give byte-identical output whatever
        ``settings.jobs`` is.
    settings : SoundfontSettings
        ``data.soundfont``. Every library file is checked before anything is rendered.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``libraries_rendered``, ``notes_planned``, ``notes_rendered``, ``notes_silent``,
        ``audio_seconds``, ``wall_seconds``, ``notes_per_second``, then per library
        ``notes_<name>`` (rendered), ``silent_<name>`` (keys it cannot play, and every note
        of an instrument it lacks) and ``instruments_<name>`` (instruments with a note).

    Raises
    ------
    DataError
        A library file missing or unreadable (before any work), or a library that
        played none of its notes.
    """
    start = time.perf_counter()
    found = libs.resolve(settings.libraries, check=True)
    notes = plan(
        seed=seed,
        n_instances=len(found),
        string_span_semitones=settings.string_span_semitones,
        max_notes_per_instrument=settings.max_notes_per_instrument,
    )
    audio_dir = Path(out_dir) / layout.AUDIO_DIR
    for folder in sorted({(audio_dir / note.path).parent for note in notes}):
        folder.mkdir(parents=True, exist_ok=True)
    config = (tuple(lib.path for lib in found), settings.sample_rate, seed, settings, str(audio_dir))
    _start(config)  # in this process: a bad file fails here, and forked workers inherit the synthesiser
    try:
        seconds = parallel.process_map(
            render_note, notes, jobs=settings.jobs, initializer=_start, initargs=(config,),
            desc="render", unit="note", progress=progress,
        )
    finally:
        _STATE.clear()
    kept = [note for note, s in zip(notes, seconds) if s > 0.0]
    silent = [note for note, s in zip(notes, seconds) if s == 0.0]
    if silent:
        log.info("skipped %d silent note(s): %s", len(silent), ", ".join(n.path for n in silent))
    per_library = {}
    for k, lib in enumerate(found):
        played = sum(1 for n in kept if n.instance == k)
        if not played:
            raise DataError(f"library {lib.name} ({lib.path}) played none of its {len(notes) // len(found)} notes: is it a General MIDI bank?")
        per_library[f"notes_{lib.name}"] = played
        per_library[f"silent_{lib.name}"] = sum(1 for n in silent if n.instance == k)
        # an instrument the library lacks (freepats: viola, double bass) has no notes at all
        per_library[f"instruments_{lib.name}"] = len({n.abbr for n in kept if n.instance == k})
    layout.write_metadata(out_dir, [metadata_row(note, library=found[note.instance].name) for note in kept])
    wall = time.perf_counter() - start
    return {
        "libraries_rendered": len(found),
        "notes_planned": len(notes),
        "notes_rendered": len(kept),
        "notes_silent": len(silent),
        "audio_seconds": round(sum(seconds), 3),
        "wall_seconds": round(wall, 3),
        "notes_per_second": round(len(notes) / wall, 1),
        **per_library,
    }
