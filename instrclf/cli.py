"""Command line: classify your own recordings with a trained model, compare models.

    instrclf classify --model models/conv2d.keras my_note.wav other.flac recordings/
    instrclf compare ...
    instrclf window data/clean Fl/Fl-ord-C4-mf-N-T14d_0.wav -o note.wav

``classify`` never gives up on a batch: every file gets its line (or JSON object), a file
that cannot be read is reported on its line and the others are still classified; the
exit status is 1 if any file failed. Only a model that cannot be used stops it, with one
line ``error: <file>: <reason>``: a missing, corrupt or unsafe ``.keras`` or ``.tflite``,
a card that belongs to another model, or a model whose call fails (never blamed on the files).

It runs a LiteRT model (``.tflite``, :class:`instrclf.litert.LiteRtModel`) without
importing TensorFlow when it is given one, or, for a ``.keras`` model, when the export
stage's LiteRT file of that very ``.keras`` stands in ``models/export/<model>/``
(:func:`open_model`); the output is the same, within the export's 1e-4.

An answer that cannot be trusted is still printed, with ``warning: <file>: <reason>`` on
stderr (and a ``"warning"`` field in its JSON object, present only then):

- too little sound: after the silence is trimmed, less than :data:`MIN_SOUND_FRACTION` of
  one window is left, so the model sees mostly the zero padding;
- a sample rate below the model's (``clean.sample_rate`` in its card): the band above half
  the file's rate, which the model learned from, is missing (an 8 kHz recording for a
  16 kHz model has nothing above 4 kHz).
"""

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, InstrclfError, ParameterError
from .settings import INFERENCE_BATCH
from .stage import unix_exits

#: Suffixes picked up when a directory is given (what libsndfile reads here; MP3 needs libsndfile >= 1.1).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")


#: A file whose sound (after the silence is trimmed) fills less than this share of one window
#: gets a warning: its one window is mostly zero padding, unlike the windows the model learned.
MIN_SOUND_FRACTION = 0.25

#: Windows per call of a LiteRT model with a dynamic batch: its cost per window was the same
#: at 32 and 256 windows a call (about 4-5 ms for conv2d on 2 cores), while 256 needed
#: about 140 MB more memory.
LITERT_BATCH = 32


#: ``--runtime``: ``auto`` runs a ``.keras`` model's LiteRT export when it was made from that
#: very file (else Keras), ``keras`` always Keras, ``litert`` the LiteRT model or an error.
RUNTIMES = ("auto", "keras", "litert")


class ModelError(InstrclfError):
    """The model failed (its call raised or returned nonsense): no file is to blame, classify stops."""


@dataclass
class FileResult:
    """What classifying one file gave: mean probabilities, silent, or the reason it failed."""

    path: str
    probs: np.ndarray | None = None
    windows: int = 0
    error: str | None = None
    warnings: list = field(default_factory=list)
    _sum: np.ndarray | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        return "error" if self.error is not None else "silent" if self.windows == 0 else "ok"


def find_audio(paths) -> list:
    """The files to classify: files as given, directories expanded to their audio files.

    Parameters
    ----------
    paths : list of str
        Files and directories, in command-line order.

    Returns
    -------
    list of (str, str or None)
        ``(path, error)`` in order; a directory contributes its files with a suffix in
        :data:`AUDIO_SUFFIXES` (any case), recursively, sorted by path. ``error`` is set for
        a path that does not exist or a directory without audio files.
    """
    found = []
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            files = sorted(
                (p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()),
                key=lambda p: p.relative_to(path).as_posix(),
            )
            if not files:
                found.append((arg, f"directory holds no audio files ({', '.join(AUDIO_SUFFIXES)})"))
            found += [(str(p), None) for p in files]
        elif path.exists():
            found.append((arg, None))
        else:
            found.append((arg, "no such file or directory"))
    return found


def padded(x: np.ndarray, size: int) -> np.ndarray:
    """``x`` with zero rows up to ``size``: one input shape for every model call, so no retracing."""
    if len(x) >= size:
        return x
    return np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), x.dtype)])


class _Batcher:
    """Gathers windows of many files into model calls of at most ``size`` windows.

    Each file keeps a running sum of its window probabilities, so memory holds at most
    ``size`` windows whatever the files' lengths. With ``pad``, a short last call is padded
    with zeros to ``size`` windows: one input shape for every call, so Keras traces its
    graph once (a LiteRT model needs no padding, which would only cost time and memory).
    """

    def __init__(self, model, *, size: int, pad: bool = True):
        self.model, self.size, self.pad = model, size, pad
        self.windows, self.owners, self.count = [], [], 0

    def add(self, result: FileResult, windows: np.ndarray) -> None:
        while len(windows):
            take = windows[: self.size - self.count]
            windows = windows[len(take) :]
            self.windows.append(take)
            self.owners.append(result)
            self.count += len(take)
            if self.count == self.size:
                self.flush()

    def holds(self, result: FileResult) -> bool:
        return any(owner is result for owner in self.owners)

    def flush(self) -> None:
        if not self.count:
            return
        x = np.concatenate(self.windows)[..., np.newaxis]
        if self.pad:
            x = padded(x, self.size)
        try:
            probs = np.asarray(self.model.predict_on_batch(x), dtype=np.float64)
        except Exception as exc:  # whatever the model raises is the model's failure, never a file's
            reason = " ".join(str(exc).split())[:300]
            raise ModelError(f"the model failed on a call of {len(x)} windows ({type(exc).__name__}: {reason})") from exc
        if probs.ndim != 2 or len(probs) != len(x):
            raise ModelError(f"the model returned an array of shape {probs.shape} for {len(x)} windows")
        if not np.isfinite(probs).all():
            raise ModelError(f"the model returned NaN or infinite probabilities for a call of {len(x)} windows")
        row = 0
        for owner, part in zip(self.owners, self.windows, strict=True):
            if owner.error is None:
                owner._sum = probs[row : row + len(part)].sum(axis=0) + (0 if owner._sum is None else owner._sum)
                owner.windows += len(part)
            row += len(part)
        self.windows, self.owners, self.count = [], [], 0


def classify_files(model, card, items, *, batch_windows=INFERENCE_BATCH, block_frames=None):
    """Classify many files, yielding each file's result in order as soon as it is known.

    Each file is cut exactly as the clean stage cut the training data
    (:func:`instrclf.audio.stream_windows`, equal to ``audio.prepare`` with the model card's
    settings), read block by block; windows of consecutive files share model calls of
    ``batch_windows`` windows, and a file's probabilities are the mean over its windows.

    Parameters
    ----------
    model : keras.Model or instrclf.litert.LiteRtModel
        Takes raw windows ``(n, window_length, 1)`` (``predict_on_batch``).
    card : instrclf.card.ModelCard
        Its card (``labels``, ``clean``).
    items : iterable of (str, str or None)
        ``(path, error)`` pairs as :func:`find_audio` gives; an item with an error is
        passed through as a failure.
    batch_windows : int
        Windows per model call (Keras's calls are all of this size, the last one padded).
    block_frames : int or None
        Frames read at a time (``None``: :data:`instrclf.audio.BLOCK_FRAMES`).

    Yields
    ------
    FileResult
        One per item, in order: ``probs`` in ``card.labels`` order, or ``windows == 0``
        for a silent file, or ``error`` (the reason, without the path).
    """
    from . import audio
    from .litert import LiteRtModel

    batcher = _Batcher(model, size=batch_windows, pad=not isinstance(model, LiteRtModel))
    blocks = {} if block_frames is None else {"block_frames": block_frames}
    waiting = []
    for path, error in items:
        result = FileResult(path=path, error=error)
        waiting.append(result)
        if error is None:
            count, last = 0, None
            try:  # only the file's own errors (DataError) are the file's: a ModelError stops everything
                for windows in audio.stream_windows(path, **card.clean.model_dump(), **blocks):
                    batcher.add(result, windows)
                    count, last = count + len(windows), windows
                rate = _file_rate(path) if count else None
            except DataError as exc:
                result.error = _reason(exc, path)
                result.windows, result._sum = 0, None
            else:
                if count:
                    result.warnings = untrusted(windows=count, last_window=last[-1], file_rate=rate, clean=card.clean)
        while waiting and not batcher.holds(waiting[0]):
            yield _finish(waiting.pop(0))
    batcher.flush()
    for result in waiting:
        yield _finish(result)


def set_model(model, card, items, *, name="the model", batch_windows=INFERENCE_BATCH, block_frames=None):
    """``model`` with the colour shift that brings the set ``items`` to the model's reference (``--as-set``).

    The set's mean spectrum is taken over every window of the files that read whole (a file
    that fails is left out, as the classifying pass reports it), through the model's own front
    end, in a first pass over the files; the shift is the model card's reference colouring less
    the set's (:mod:`instrclf.colour`). ``model`` is a Keras user model trained with
    ``train.library_colour``; ``name`` (its file) names it in errors.
    """
    from . import audio, colour
    from .models import assemble, back_ends, shift_average_of

    if card.colour_degree is None:
        raise DataError(f"{name}: --as-set: the model was trained without train.library_colour, "
                        "so it has no colouring to bring the set to")
    front = model.get_layer("frontend")
    spectra = colour.MeanSpectra()
    blocks = {} if block_frames is None else {"block_frames": block_frames}

    def add(into, windows):
        for start in range(0, len(windows), batch_windows):
            batch = windows[start : start + batch_windows]
            spectra = front.predict_on_batch(padded(batch[..., np.newaxis], batch_windows))
            into.add(np.asarray(spectra)[: len(batch)], ["set"] * len(batch))  # the padding's dropped

    for path, error in items:
        if error is not None:
            continue
        mine = colour.MeanSpectra()  # block by block: memory does not grow with the file
        try:
            for windows in audio.stream_windows(path, **card.clean.model_dump(), **blocks):
                add(mine, windows)
        except DataError:
            continue  # left out of the set, as the classifying pass leaves it out (and reports it)
        spectra.update(mine)
    if not spectra.counts:
        raise DataError(f"{name}: --as-set: no file holds sound above the threshold: the set has no colouring to measure")
    shift = colour.shift(spectra.means()["set"], degree=card.colour_degree, target=card.colour_reference)
    return assemble(front, back_ends(model), name=model.name, shift=shift, shift_average=shift_average_of(model))


def _file_rate(path) -> int:
    """The sample rate a file was recorded at (read from its header)."""
    import soundfile as sf

    try:
        return int(sf.info(str(path)).samplerate)
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise DataError(f"{path}: not readable as audio ({exc})") from None


def untrusted(*, windows: int, last_window, file_rate: int, clean) -> list:
    """Why a file's answer cannot be trusted, as warnings (empty when it can).

    Parameters
    ----------
    windows : int
        How many windows the file gave (>= 1).
    last_window : np.ndarray, shape (window_length,)
        Its last window; with one window, the sound it holds is followed by zero padding.
    file_rate : int
        The file's own sample rate in Hz.
    clean : instrclf.settings.CleanSettings
        The model card's settings.

    Returns
    -------
    list of str
        Too little sound (less than :data:`MIN_SOUND_FRACTION` of one window), and a
        sample rate below ``clean.sample_rate``.
    """
    found = []
    if windows == 1:
        sound = np.flatnonzero(last_window)
        seconds = (sound[-1] + 1 if len(sound) else 0) / clean.sample_rate
        if seconds < MIN_SOUND_FRACTION * clean.delta_time:
            found.append(
                f"only {seconds:.4g} s of sound above the threshold, under {MIN_SOUND_FRACTION:.0%} of the model's "
                f"{clean.delta_time:g}-s window (the rest is zero padding): the answer cannot be trusted"
            )
    if file_rate < clean.sample_rate:
        found.append(
            f"recorded at {file_rate} Hz, below the model's {clean.sample_rate} Hz: nothing above {file_rate / 2:g} Hz, "
            "a band the model learned from, so the answer cannot be trusted"
        )
    return found


def open_model(path, *, runtime="auto") -> tuple:
    """The model ``classify`` runs for ``--model path``, its card, and the file it runs.

    - a ``.tflite``: that LiteRT model, its card beside it (``runtime`` ``keras`` is refused);
    - a ``.keras`` and ``runtime`` ``auto``: its LiteRT export
      (``models/export/<model>/<model>.tflite``, :func:`instrclf.card.export_dir`) when
      :func:`open_export` accepts it and the model computes in float32, else the ``.keras``
      itself, with Keras; a note on stderr says why an export that is there was refused.
      A model trained in a mixed precision is exported from its float32 twin, whose answers
      differ from the trained arithmetic's by more than the export's 1e-4: Keras runs it;
    - ``litert``: that export, or the one-line DataError that says why it cannot be used;
    - ``keras``: the ``.keras``, with Keras.

    Returns
    -------
    model : keras.Model or instrclf.litert.LiteRtModel
    card : instrclf.card.ModelCard
    used : str or Path
        The model file that runs: ``path`` as given, or the export that runs for it.

    Raises
    ------
    DataError
        One line naming the file: a missing or corrupt model or card, or a card that
        belongs to another model.
    """
    from .card import card_path, export_dir, export_paths

    given, path = path, Path(path)
    if runtime not in RUNTIMES:
        raise ParameterError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    if path.suffix == ".tflite":
        if runtime == "keras":
            raise DataError(f"{path}: a LiteRT model runs with --runtime litert or auto, not keras")
        model, card = open_litert(path, card_file=card_path(path))
        return model, card, given
    if runtime != "keras":
        exported = export_paths(export_dir(path), path.stem)["tflite"]
        try:
            model, card = open_export(exported, keras_path=path)
        except DataError as exc:
            if runtime == "litert":
                raise
            if exported.is_file() and path.is_file() and card_path(path).is_file():  # an export there, but not this model's
                print(f"note: {exc}; classifying with Keras instead", file=sys.stderr)
        else:
            if runtime == "litert" or card.typed_config.precision == "float32":
                return model, card, exported
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter is not for this command's users
    from .models import load

    model, card = load(path)
    expected = (None, card.clean.window_length, 1)
    if tuple(model.input_shape) != expected:
        raise DataError(f"{given}: model takes input {tuple(model.input_shape)}, its card's windows are {expected}")
    check_card_fits(model, card, path=given)
    return model, card, given


def open_litert(path, *, card_file) -> tuple:
    """A LiteRT model and its card ``card_file``, checked to be the card it was exported with.

    Returns
    -------
    model : instrclf.litert.LiteRtModel
    card : instrclf.card.ModelCard

    Raises
    ------
    DataError
        One line naming the file: missing or corrupt model or card, ``ai-edge-litert`` not
        installed, a model without its card in its metadata (not an ``export@`` file), a
        card that differs from that one, or a model whose input or output does not fit it.
    """
    from .card import parse_card, read_card
    from .litert import CARD_METADATA, LiteRtModel

    try:
        model = LiteRtModel(path)
    except ImportError as exc:
        raise DataError(f"{path}: a LiteRT model needs ai-edge-litert, which is not installed ({exc.msg})") from None
    card = read_card(card_file)
    own = parse_card(model.metadata(CARD_METADATA), name=f"{path} (metadata {CARD_METADATA})")
    if own != card:
        differ = [name for name in type(card).model_fields if getattr(card, name) != getattr(own, name)]
        raise DataError(
            f"{card_file}: the card of a {card.model} model does not fit {path}, exported with the card of a "
            f"{own.model} model (they differ in {', '.join(differ)}): it belongs to another model"
        )
    expected = (None, card.clean.window_length, 1)
    if tuple(model.input_shape) != expected:
        raise DataError(f"{path}: model takes input {tuple(model.input_shape)}, its card's windows are {expected}")
    if model.output_shape[-1] != len(card.labels):
        raise DataError(f"{path} has {model.output_shape[-1]} outputs but its card lists {len(card.labels)} labels")
    return model, card


def open_export(path, *, keras_path) -> tuple:
    """The LiteRT export ``path`` of ``keras_path``, if it was made from that very file, and their card.

    The export must exist, record the SHA-256 of ``keras_path``'s bytes (metadata
    :data:`instrclf.litert.SOURCE_METADATA`, written by ``export@<model>``) and carry the
    card beside ``keras_path``: a retrained, replaced or edited model, or an export made
    before the model, is refused, so the export never answers for another model.

    Returns
    -------
    model : instrclf.litert.LiteRtModel
    card : instrclf.card.ModelCard

    Raises
    ------
    DataError
        One line naming the export and why it does not stand for ``keras_path``.
    """
    from .card import card_path
    from .io import sha256_of
    from .litert import SOURCE_METADATA

    path, keras_path = Path(path), Path(keras_path)
    if not path.is_file():
        raise DataError(f"{path}: no LiteRT export of {keras_path} (make it: dvc repro export@{keras_path.stem})")
    model, card = open_litert(path, card_file=card_path(keras_path))
    try:
        digest = sha256_of(keras_path)
    except OSError as exc:
        raise DataError(f"{keras_path}: cannot be read ({exc.strerror})") from None
    if model.metadata(SOURCE_METADATA).decode() != digest:
        raise DataError(f"{path}: exported from another {keras_path} (its SHA-256 differs: "
                        f"rerun dvc repro export@{keras_path.stem})")
    return model, card


def default_batch(model) -> int:
    """Windows per model call when ``--batch-size`` is not given.

    :data:`instrclf.settings.INFERENCE_BATCH` for Keras; for a LiteRT model its fixed batch
    if it has one (every call is padded to it), else :data:`LITERT_BATCH`.
    """
    from .litert import LiteRtModel

    if isinstance(model, LiteRtModel):
        return model.batch or LITERT_BATCH
    return INFERENCE_BATCH


def check_card_fits(model, card, *, path) -> None:
    """Refuse a card that describes another model than the one loaded from ``path``.

    A saved model is named after its model (``conv2d``) and holds one back end per test
    fold of its card (``conv2d_fold0``...); a card copied beside another ``.keras`` differs.

    Raises
    ------
    DataError
        One line naming the card, what it describes and what the file holds.
    """
    from .backends import backend_name
    from .card import card_path

    expected = sorted(backend_name(card.model, fold) for fold in card.test_folds)
    layers = sorted(layer.name for layer in model.layers if type(layer).__name__ != "InputLayer")
    if model.name != card.model or not set(expected) <= set(layers):
        raise DataError(
            f"{card_path(path)}: the card of a {card.model} model (back ends {expected}) does not fit {path}, "
            f"a {model.name!r} model with layers {layers}: it belongs to another model"
        )


def _reason(exc, path) -> str:
    """An error message without the leading ``<path>: `` (the line names the file already)."""
    message = str(exc)
    for prefix in (f"{path}: ", f"{Path(path)}: "):
        message = message.removeprefix(prefix)
    return message


def _finish(result: FileResult) -> FileResult:
    if result.error is None and result.windows:
        result.probs = result._sum / result.windows
    result._sum = None
    return result


def _line(result: FileResult, *, labels, top_k: int, threshold_db: float) -> str:
    if result.status == "error":
        return f"{result.path}: error: {result.error}"
    if result.status == "silent":
        return f"{result.path}: silent (nothing above the model's threshold of {threshold_db} dBFS)"
    return f"{result.path}: " + ", ".join(f"{label} {p:.1%}" for label, p in _ranked(result, labels, top_k))


def _json(result: FileResult, *, labels, top_k: int) -> str:
    ranked = _ranked(result, labels, top_k) if result.status == "ok" else []
    value = {
        "file": result.path,
        "status": result.status,
        "windows": result.windows,
        "top": [{"label": label, "probability": p} for label, p in ranked],
        "error": result.error,
    }
    if result.warnings:
        value["warning"] = "; ".join(result.warnings)
    return json.dumps(value)


def _ranked(result, labels, top_k):
    order = np.argsort(-result.probs, kind="stable")[:top_k]
    return [(labels[i], float(result.probs[i])) for i in order]


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def classify(argv=None) -> int:
    """``instrclf classify``: print the most likely labels of each recording."""
    from .audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    parser = argparse.ArgumentParser(
        prog="instrclf classify",
        allow_abbrev=False,  # --top is not --top-k
        description=(
            "Name the instrument playing each recording. Every file gets one line (or one JSON "
            "object); unreadable files are reported on their line and the rest are still "
            "classified. An answer that cannot be trusted (too little sound, a sample rate below the "
            "model's) gets a warning on stderr and a 'warning' field in JSON. Exit status: 0 if every "
            "file was classified or found silent, 1 if any failed or the model cannot be used, 2 for a "
            "bad command line, 130 if interrupted (Ctrl-C), 141 if the output's reader closed early (| head)."
        ),
        epilog=(
            f"Any sample rate from {MIN_SAMPLE_RATE // 1000} kHz to {MAX_SAMPLE_RATE // 1000} kHz and any number "
            "of channels is accepted; audio is cut exactly as the training data was (the settings are in the "
            f"model's card). Directories are searched recursively for {', '.join(AUDIO_SUFFIXES)} files, "
            "in sorted order. Long files are read in blocks, so memory does not grow with their length."
        ),
    )
    parser.add_argument(
        "--model", required=True,
        help="a trained model, e.g. models/conv2d.keras or its LiteRT export models/export/conv2d/conv2d.tflite "
             "(its card .json beside it)",
    )
    parser.add_argument(
        "--runtime", choices=RUNTIMES, default="auto",
        help="auto (default): for a .keras, its LiteRT export models/export/<model>/<model>.tflite when it was made "
             "from that very .keras file (no TensorFlow: a fast start), else Keras; keras: always Keras; litert: "
             "the LiteRT model, or an error saying why not. A .tflite model always runs with LiteRT",
    )
    parser.add_argument(
        "--as-set", action="store_true",
        help="the files are one set from one recording chain (one microphone, room and converter, or one sample "
             "library) with several instruments: measure the set's colouring over all of them and bring it to the one "
             "the model learned on before classifying (two passes; Keras). Needs a model trained with "
             "train.library_colour; a set of one instrument only has that instrument as its colouring",
    )
    parser.add_argument("--top-k", type=_positive, default=3, metavar="K", help="how many labels to show per file (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file (with an 'error' field, and a 'warning' field when the answer cannot be trusted) instead of text")
    parser.add_argument(
        "--batch-size", type=_positive, default=None, metavar="N",
        help=f"windows per model call, shared by consecutive files (default {INFERENCE_BATCH} with Keras; with LiteRT "
             f"{LITERT_BATCH}, or the model's fixed batch)",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio files or directories")
    args = parser.parse_args(argv)

    items = find_audio(args.paths)
    from tqdm import tqdm

    if args.as_set and (args.runtime == "litert" or Path(args.model).suffix == ".tflite"):
        parser.error("--as-set runs the .keras model with Keras (--runtime auto or keras)")
    model, card, used = open_model(args.model, runtime="keras" if args.as_set else args.runtime)
    if args.as_set:
        model = set_model(model, card, items, name=used, batch_windows=args.batch_size or default_batch(model))
    counts = {"ok": 0, "silent": 0, "error": 0}
    bar = tqdm(total=len(items), unit="file", desc="classify", disable=None, leave=False, file=sys.stderr)
    with bar:
        try:
            for result in classify_files(model, card, items, batch_windows=args.batch_size or default_batch(model)):
                for warning in result.warnings:
                    bar.write(f"warning: {result.path}: {warning}", file=sys.stderr)
                if args.json:
                    line = _json(result, labels=card.labels, top_k=args.top_k)
                else:
                    line = _line(result, labels=card.labels, top_k=args.top_k, threshold_db=card.clean.threshold_db)
                bar.write(line, file=sys.stdout)
                sys.stdout.flush()
                counts[result.status] += 1
                bar.update(1)
        except ModelError as exc:
            raise ModelError(f"{used}: {exc}") from exc
    print(
        f"classify: {len(items)} file(s): {counts['ok']} classified, {counts['silent']} silent, {counts['error']} failed",
        file=sys.stderr,
    )
    return 1 if counts["error"] else 0


def compare(argv=None) -> int:
    """``instrclf compare``: see ``instrclf compare --help``."""
    try:
        from . import compare as module
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.compare":
            raise
        raise InstrclfError("the compare command is not installed in this version") from None
    return module.main(argv)


def window(argv=None) -> int:
    """``instrclf window``: write one clean window (a row of index.csv) as a 16-bit WAV file to listen to."""
    parser = argparse.ArgumentParser(prog="instrclf window", description=window.__doc__.split(": ", 1)[1])
    parser.add_argument("clean", type=Path, help="the clean stage's folder (data/clean)")
    parser.add_argument("name", help="the window's name, its index.csv 'window' value (e.g. Fl/Fl-ord-C4-mf-N-T14d_0.wav)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="the WAV file to write")
    parser.add_argument("--params", default="params.yaml", help="the params file that gives clean.sample_rate")
    args = parser.parse_args(argv)
    from . import data, settings

    rate = settings.section(settings.load(args.params, keys=("clean",)), settings.CleanSettings).sample_rate
    print(data.write_window(args.clean, args.name, args.out, sample_rate=rate))
    return 0


COMMANDS = {"classify": classify, "compare": compare, "window": window}


def main(argv=None) -> None:
    """``instrclf <command> ...``: exit 0 on success, 1 on an error (one line, no traceback), 2 on bad usage.

    Like a Unix tool (:func:`instrclf.stage.unix_exits`): Ctrl-C prints ``interrupted`` and
    exits 130; output cut off by its reader (``| head -1``) ends quietly with 141; a
    permission error is one line naming the path, exit 1.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    usage = f"usage: instrclf {{{','.join(COMMANDS)}}} ...\n{__doc__}"
    if argv and argv[0] in ("-h", "--help"):
        print(usage)
        sys.exit(0)
    if not argv or argv[0] not in COMMANDS:
        print(usage, file=sys.stderr)
        sys.exit(2)
    with unix_exits():
        try:
            status = COMMANDS[argv[0]](argv[1:])
        except InstrclfError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
        sys.stdout.flush()  # inside unix_exits: a reader gone by now is a closed pipe, not a traceback at exit
    sys.exit(status)


if __name__ == "__main__":
    main()
