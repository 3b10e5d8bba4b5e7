"""The clean step: every raw note becomes fixed-length mono windows plus ``index.csv``.

Reads the raw layout (:func:`instrclf.layout.read_metadata`), cuts each note exactly as
:func:`instrclf.audio.prepare` does, and writes the windows as 16-bit samples into a few
shard arrays, ``<out>/shards/NNNNN.npy`` (:class:`instrclf.layout.ShardWriter`: a note's
windows together, one shard in memory at most), and ``<out>/index.csv``, whose ``window``
column names each window ``<label>/<stem>_<i>.wav`` (what :func:`instrclf.data.write_window`
writes to listen to it). All inside :func:`instrclf.io.atomic_dir`, so a failed run leaves
the previous output untouched.
"""

from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from sys import intern

import numpy as np

from . import audio, layout
from .errors import DataError, ParameterError
from .io import atomic_dir
from .parallel import process_imap
from .settings import CleanSettings


@dataclass(frozen=True, slots=True)
class Note:
    """One row of the raw metadata: a source recording and its label."""

    path: str  # TinySOL's Path, relative to raw/audio
    fold: int
    family: str
    instrument: str
    library: str
    label: str

    @property
    def stem(self) -> str:
        return PurePosixPath(self.path).stem


@dataclass(frozen=True, slots=True)
class Result:
    """What cleaning one note gave: sizes for the metrics, or the reason it failed."""

    frames: int = 0
    sample_rate: int = 0
    kept: int = 0
    windows: int = 0
    clipped: int = 0
    error: str | None = None
    pcm: np.ndarray | None = None  # the windows, int16 (windows, samples), until they are in a shard


def read_notes(raw_dir, *, target: str) -> list:
    """The raw set's notes, sorted by Path, labelled by ``data.target``.

    Two notes that would write the same window files (same label and file stem) are an
    error naming both.
    """
    if target not in layout.TARGETS:
        raise ParameterError(f"data.target must be one of {sorted(layout.TARGETS)}, got {target!r}")
    metadata = layout.read_metadata(raw_dir, check_audio=False)
    labels = layout.label_column(metadata, target=target)
    # one string object per distinct family, instrument, library and label, not one per note
    notes = [
        Note(path=p, fold=int(f), family=intern(fam), instrument=intern(inst), library=intern(lib), label=intern(lab))
        for p, f, fam, inst, lib, lab in zip(
            metadata["Path"], metadata["fold"], metadata["family"], metadata["instrument"], metadata["library"], labels
        )
    ]
    seen, problems = {}, []
    for note in notes:
        key = (note.label, note.stem)
        if key in seen:
            problems.append(f"{seen[key]} and {note.path} would both write {key[0]}/{key[1]}_<i>.wav")
        seen[key] = note.path
    if problems:
        raise DataError(f"{Path(raw_dir) / layout.METADATA_FILE}: window names collide: " + "; ".join(problems))
    return notes


def clean_note(note: Note, *, audio_dir, clean: CleanSettings) -> Result:
    """Cut one note into 16-bit windows (``Result.pcm``); a bad or missing file is a Result with ``error``."""
    path = Path(audio_dir) / note.path
    if not path.is_file():
        return Result(error=f"{path}: missing (listed in {layout.METADATA_FILE})")
    try:
        y, sr = audio.load(path)
        # audio.prepare(...) is exactly windows(trim(...)); split here to count kept samples.
        kept = audio.trim(
            y, sr, sample_rate=clean.sample_rate, threshold_db=clean.threshold_db, envelope_ms=clean.envelope_ms
        )
        cut = audio.windows(kept, sample_rate=clean.sample_rate, delta_time=clean.delta_time)
    except DataError as exc:
        return Result(error=str(exc))
    pcm, clipped = audio.to_pcm16(cut)
    return Result(frames=len(y), sample_rate=sr, kept=len(kept), windows=len(cut), clipped=clipped, pcm=pcm)


def run(raw_dir, out_dir, *, clean: CleanSettings, target: str, jobs=None, progress=True, shard_bytes=layout.SHARD_BYTES) -> dict:
    """Clean the whole raw set into windows, index.csv and metrics.

    Parameters
    ----------
    raw_dir : str or Path
        The raw layout: ``TinySOL_metadata.csv`` and ``audio/<Path>`` for every row.
    out_dir : str or Path
        Replaced, only on success, by ``shards/NNNNN.npy`` (the windows) and ``index.csv``.
    clean : CleanSettings
        Sample rate, window length, threshold and envelope length.
    target : str
        ``"instrument"`` or ``"family"`` (``data.target``).
    jobs : int or None
        Worker processes; ``None`` uses every core. Outputs do not depend on it.
    progress : bool
        Show a progress bar (on a terminal).
    shard_bytes : int
        Largest shard (unless one note is longer); memory holds one shard at most.

    Returns
    -------
    dict
        Flat metrics: files_read, notes_silent, notes_padded, windows_written, classes,
        libraries, windows_per_class_min/max, seconds_in, seconds_kept, samples_clipped.

    Raises
    ------
    DataError
        Bad metadata (before any work), or, after every file was tried, one error listing
        every missing, unreadable, empty, truncated, non-audio or NaN file together.
        ``out_dir`` is then left as it was.
    """
    raw_dir = Path(raw_dir)
    notes = read_notes(raw_dir, target=target)
    tally = _Tally(labels=sorted({n.label for n in notes}), clean=clean)
    with atomic_dir(out_dir) as tmp, layout.index_writer(tmp) as write_row:
        shards = layout.ShardWriter(tmp, n_samples=clean.window_length, shard_bytes=shard_bytes)
        work = partial(clean_note, audio_dir=raw_dir / layout.AUDIO_DIR, clean=clean)
        results = process_imap(work, notes, jobs=jobs, desc="clean", unit="note", progress=progress)
        for note, result in zip(notes, results, strict=True):  # in Path order: the index and sums are deterministic
            tally.add(note, result)
            if result.error is None and not tally.errors:  # a note's windows and rows are written as they arrive
                shard, first = shards.add(result.pcm)
                stem = f"{note.label}/{note.stem}_"
                for i in range(result.windows):
                    write_row((f"{stem}{i}.wav", note.path, note.instrument, note.family, note.library, note.label,
                               note.fold, i, shard, first + i))
        if tally.errors:
            raise DataError(f"{len(tally.errors)} of {len(notes)} audio file(s) are missing or bad: " + "; ".join(tally.errors))
        if not tally.windows:
            raise DataError(f"no windows: every note is at or below clean.threshold_db = {clean.threshold_db} dBFS")
        shards.flush()
        return tally.metrics()


class _Tally:
    """Clean's metrics, summed note by note in Path order (deterministic), holding nothing per note."""

    def __init__(self, *, labels, clean: CleanSettings):
        self.clean, self.errors, self.libraries = clean, [], set()
        self.per_class = dict.fromkeys(labels, 0)
        self.files = self.silent = self.padded = self.windows = self.clipped = self.kept = 0
        self.seconds_in = 0.0

    def add(self, note: Note, result: Result) -> None:
        self.files += 1
        if result.error is not None:
            self.errors.append(result.error)
        self.silent += result.windows == 0
        self.padded += 0 < result.kept < self.clean.window_length
        self.windows += result.windows
        self.per_class[note.label] += result.windows
        if result.windows:
            self.libraries.add(note.library)
        self.seconds_in += result.frames / result.sample_rate if result.sample_rate else 0.0
        self.kept += result.kept
        self.clipped += result.clipped

    def metrics(self) -> dict:
        """Flat, numbers-only metrics of the run."""
        return {
            "files_read": self.files,
            "notes_silent": self.silent,
            "notes_padded": self.padded,
            "windows_written": self.windows,
            "classes": sum(n > 0 for n in self.per_class.values()),
            "libraries": len(self.libraries),
            "windows_per_class_min": min(self.per_class.values()),
            "windows_per_class_max": max(self.per_class.values()),
            "seconds_in": round(self.seconds_in, 3),
            "seconds_kept": round(self.kept / self.clean.sample_rate, 3),
            "samples_clipped": self.clipped,
        }


def pick_notes(notes, *, per_class=2) -> list:
    """A few notes per label, deterministically: evenly spread over each label's sorted Paths.

    Parameters
    ----------
    notes : list of Note
    per_class : int
        Notes per label (fewer if a label has fewer).

    Returns
    -------
    list of Note
        Sorted by label, then Path.
    """
    by_label = {}
    for note in sorted(notes, key=lambda n: (n.label, n.path)):
        by_label.setdefault(note.label, []).append(note)
    chosen = []
    for group in by_label.values():
        k = min(per_class, len(group))
        picks = sorted({round(j * (len(group) - 1) / max(k - 1, 1)) for j in range(k)})
        chosen += [group[i] for i in picks]
    return chosen
