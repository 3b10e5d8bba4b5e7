"""What a render plays: every TinySOL-shaped note, its cross-validation fold, and subsets.

Every TinySOL note (instrument, pitch, dynamics, and for bowed strings every string that
can play the pitch) is planned once and given a fold; every library then plays it as one
more instance (``Instance ID`` = the library's position). A note keeps its fold on every
library, so a fold never holds a note that another fold holds on another library, and a
note's fold does not depend on how many libraries are rendered.
"""

from dataclasses import dataclass, replace

import numpy as np

from ...errors import ParameterError
from ...instruments import BY_ABBR, DYNAMICS_ID, INSTRUMENTS, N_FOLDS, pitch_name

#: Dynamics rendered, and the MIDI velocity that plays each.
VELOCITY = {"pp": 40, "mf": 80, "ff": 120}

#: Instrument abbreviation -> its position in TinySOL's list (part of a note's identity).
_INDEX = {inst.abbr: i for i, inst in enumerate(INSTRUMENTS)}


@dataclass(frozen=True)
class Note:
    """One planned file.

    Attributes
    ----------
    abbr : str        Instrument abbreviation (``tinysol.BY_ABBR`` key).
    midi : int        MIDI pitch.
    dynamics : str    ``pp``, ``mf`` or ``ff``.
    string : int      String number 1-4 (1 = highest) for bowed strings, 0 otherwise.
    instance : int    The library's position in ``data.soundfont.libraries``.
    fold : int        Cross-validation fold 0-4 (-1 before :func:`assign_folds`).
    """

    abbr: str
    midi: int
    dynamics: str
    string: int
    instance: int = 0
    fold: int = -1

    @property
    def path(self) -> str:
        """The file's path inside ``audio/``, TinySOL style (tag ``N`` for instance 0, ``I<k>`` after)."""
        inst = BY_ABBR[self.abbr]
        string = f"{self.string}c" if self.string else "N"
        tag = f"I{self.instance}" if self.instance else "N"
        name = f"{self.abbr}-ord-{pitch_name(self.midi)}-{self.dynamics}-{string}-{tag}.wav"
        return f"{inst.folder}/ordinario/{name}"

    @property
    def key(self) -> tuple:
        """Integers that identify the note whatever the plan around it (they seed its randomness)."""
        return (self.instance, _INDEX[self.abbr], self.midi, DYNAMICS_ID[self.dynamics], self.string)


def string_pitches(*, open_pitches: tuple, low: int, high: int, span_semitones: int) -> list:
    """Pairs ``(midi, string)`` a bowed instrument plays: each string from open to ``span`` above.

    Parameters
    ----------
    open_pitches : tuple of int
        Open-string MIDI pitches, string 1 (highest) first.
    low, high : int
        The instrument's range (inclusive); the top string is played up to ``high``.
    span_semitones : int
        How far above its open pitch a string is played.

    Returns
    -------
    list of tuple
        ``(midi, string)`` sorted by pitch then string.
    """
    pairs = []
    top = max(open_pitches)
    for number, open_ in enumerate(open_pitches, start=1):
        stop = high if open_ == top else min(high, open_ + span_semitones)
        pairs += [(midi, number) for midi in range(max(low, open_), stop + 1)]
    return sorted(pairs)


def plan(*, seed: int, n_instances: int = 1, string_span_semitones: int = 24, max_notes_per_instrument=None) -> list:
    """Every note to render, with its fold, sorted by path.

    Parameters
    ----------
    seed : int
        Seeds the fold of each instrument's first note.
    n_instances : int
        Number of libraries; each plays every planned note once, in the note's fold.
    string_span_semitones : int
        See :func:`string_pitches`.
    max_notes_per_instrument : int or None
        Keep at most this many notes per instrument and library, evenly spread
        (:func:`spread`); every library plays the same ones.

    Returns
    -------
    list of Note
    """
    if isinstance(n_instances, bool) or not isinstance(n_instances, int) or n_instances < 1:
        raise ParameterError(f"n_instances must be an integer >= 1, got {n_instances!r}")
    offsets = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))).integers(N_FOLDS, size=len(INSTRUMENTS))
    notes = []
    for inst, offset in zip(INSTRUMENTS, offsets):
        if inst.strings:
            pairs = string_pitches(open_pitches=inst.strings, low=inst.low, high=inst.high, span_semitones=string_span_semitones)
        else:
            pairs = [(midi, 0) for midi in range(inst.low, inst.high + 1)]
        rows = assign_folds([Note(inst.abbr, midi, dyn, string) for dyn in VELOCITY for midi, string in pairs], offset=int(offset))
        if max_notes_per_instrument is not None:
            rows = spread(rows, k=max_notes_per_instrument)
        notes += [replace(note, instance=k) for note in rows for k in range(n_instances)]
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
    return [replace(n, fold=(offset + i) % N_FOLDS) for i, n in enumerate(ordered)]


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
