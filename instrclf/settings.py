"""Typed, validated settings: one class per section of params.yaml.

A stage reads params.yaml once (:func:`load`), builds the sections it needs with
:func:`section` (or ``Cls.from_params(value)``) and passes those objects down; no
package function takes the whole params dict. Every class refuses unknown keys, wrong
types (a bool is not an int, ``0.0`` is not an int, ``"1e-3"`` is not a number) and
values outside their bounds, with one line naming the key path, the value and what is
allowed. This module imports no TensorFlow, so it is cheap to import anywhere.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from .errors import ParameterError
from .instruments import N_FOLDS

#: Windows per model call wherever a model only predicts (features, validation, predict,
#: classify): memory and speed only, never results (each window is computed on its own).
INFERENCE_BATCH = 256


# --------------------------------------------------------------------------- reading


def load(path="params.yaml", *, keys=None) -> dict:
    """Read a params file once.

    Parameters
    ----------
    path : str or Path
        The YAML file, usually the repository's ``params.yaml``.
    keys : sequence of str, optional
        A stage's ``PARAMS``: the dotted keys it reads, exactly its ``params:`` in dvc.yaml.
        Only they are returned (:func:`restrict`), so a stage cannot read a key DVC does not
        track for it: its code fails instead, naming the key.

    Returns
    -------
    dict
        The parsed parameters; build sections from it with :func:`section`.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            params = yaml.safe_load(f)
    except FileNotFoundError:
        raise ParameterError(f"params file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(params, dict):
        raise ParameterError(f"{path} must hold a mapping, got {type(params).__name__}")
    return params if keys is None else restrict(params, keys)


def restrict(params: dict, keys) -> dict:
    """The part of ``params`` under the dotted ``keys`` (nested as in params.yaml); a missing key is an error naming it."""
    out: dict = {}
    for key in keys:
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = lookup(params, key)
    return out


def lookup(params: dict, key: str):
    """Value of a dotted key such as ``"data.target"``; raise naming the key if absent."""
    value = params
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ParameterError(f"params.yaml has no key {key!r}")
        value = value[part]
    return value


def section(params: dict, cls):
    """Build the settings class ``cls`` from its section of ``params`` (at ``cls.KEY``)."""
    return cls.from_params(lookup(params, cls.KEY))


def seed(params: dict) -> int:
    """The shared ``seed``: an integer in 0 .. 2**32 - 1."""
    value = lookup(params, "seed")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ParameterError(f"seed must be an integer in 0..{2**32 - 1}, got {value!r}")
    return value


# --------------------------------------------------------------------------- base


def _fields_at(cls, loc) -> list:
    """Field names of the (possibly nested) settings class at ``loc`` inside ``cls``."""
    for part in loc:
        field = cls.model_fields.get(part) if isinstance(part, str) else None
        nested = getattr(field, "annotation", None)
        if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
            break
        cls = nested
    return sorted(cls.model_fields)


def _describe(error: dict, key: str, cls) -> str:
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    path = f"{key}{loc}"
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(cls, error["loc"][:-1])
        return f"{path} = {error['input']!r}: unknown key; allowed: {allowed}"
    if kind == "missing":
        return f"{path}: missing (required)"
    message = error["msg"].removeprefix("Value error, ")
    if kind in ("model_type", "dict_type"):
        return f"{path} = {error['input']!r}: must be a mapping"
    if kind == "value_error" and isinstance(error["input"], dict):
        return f"{path}: {message}"  # a check across keys: the message names them and their values
    return f"{path} = {error['input']!r}: {message}"


class Settings(BaseModel):
    """Base of every section: unknown keys refused, strict types, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: Dotted params key of the section, used in error messages.
    KEY: ClassVar[str] = ""

    @classmethod
    def key(cls, params: dict, name: str):
        """One key of this section (``<KEY>.<name>``), validated as the whole section validates it.

        For a stage that reads part of a section: its ``params:`` in dvc.yaml then list that
        key alone, and a change to the section's other keys reruns nothing of it. Checks
        across keys (a model validator) do not run.
        """
        field = cls.model_fields[name]
        dotted = f"{cls.KEY}.{name}"
        value = lookup(params, dotted)
        try:
            kind = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
            return TypeAdapter(kind).validate_python(value, strict=True)
        except ValidationError as exc:
            raise ParameterError("; ".join(_describe(e, dotted, cls) for e in exc.errors())) from None

    @classmethod
    def from_params(cls, value):
        """Validate one section's value (a mapping) into this class.

        Raises
        ------
        ParameterError
            One line naming each bad key path, its value and what is allowed.
        """
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ParameterError(f"{cls.KEY} must be a mapping, got {value!r}")
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            raise ParameterError("; ".join(_describe(e, cls.KEY, cls) for e in exc.errors())) from None


def _as_tuple(value):
    return tuple(value) if isinstance(value, list) else value


def _span(low: float, high: float):
    """A ``[min, max]`` pair of numbers inside ``[low, high]`` with ``min <= max``."""

    def check(pair):
        lo, hi = pair
        if not (low <= lo <= high and low <= hi <= high):
            raise ValueError(f"both ends must lie in [{low}, {high}]")
        if lo > hi:
            raise ValueError("min must be <= max")
        return pair

    return Annotated[tuple[float, float], BeforeValidator(_as_tuple), AfterValidator(check)]


def _unique(values):
    if len(set(values)) != len(values):
        raise ValueError("entries must be unique")
    return values


Width = Annotated[int, Field(ge=1, le=4096)]
Dropout = Annotated[float, Field(ge=0, lt=1)]
L2 = Annotated[float, Field(ge=0, le=1)]
TimePool = Annotated[int, Field(ge=1, le=64)]  # log-mel frames averaged per step; 1 keeps every frame


# --------------------------------------------------------------------------- data


class TinysolSettings(Settings):
    """``data.tinysol``: where the Zenodo files are and their md5 checksums."""

    KEY: ClassVar[str] = "data.tinysol"

    base_url: Annotated[str, Field(pattern=r"^(https?|file)://\S+$")]
    md5: dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]]

    @model_validator(mode="after")
    def _files(self):
        missing = sorted({"TinySOL.tar.gz", "TinySOL_metadata.csv"} - set(self.md5))
        if missing:
            raise ValueError(f"md5 lacks {missing}")
        return self


class LocalSettings(Settings):
    """``data.local``: a folder of your own recordings in TinySOL's layout."""

    KEY: ClassVar[str] = "data.local"

    path: Annotated[str, Field(min_length=1)]


class SoundfontSettings(Settings):
    """``data.soundfont``: the sampled libraries rendered and each note's variation."""

    KEY: ClassVar[str] = "data.soundfont"

    libraries: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=16), AfterValidator(_unique)]
    max_notes_per_instrument: Annotated[int, Field(ge=1)] | None
    string_span_semitones: Annotated[int, Field(ge=0, le=60)]
    jobs: Annotated[int, Field(ge=1, le=256)] | None
    sample_rate: Annotated[int, Field(ge=8000, le=192000)]
    note_seconds: _span(0.01, 60)
    release_seconds: _span(0, 10)
    onset_seconds: _span(0, 10)
    detune_cents: Annotated[float, Field(ge=0, le=100)]
    vibrato_cents: _span(0, 100)
    vibrato_hz: _span(0.1, 20)
    level_db: _span(-80, 0)
    reverb_seconds: _span(0.01, 10)
    reverb_mix: _span(0, 1)
    snr_db: _span(-20, 120)
    noise_color: _span(0, 2)
    tilt_db_per_octave: Annotated[float, Field(ge=0, le=24)]
    body_db: Annotated[float, Field(ge=0, le=24)]
    body_jitter: Annotated[float, Field(ge=0, le=0.5)]


#: Values of ``data.source`` (one, or a list of them combined into one raw set).
SOURCE_NAMES = ("soundfont", "tinysol", "local")


def _sources(value):
    """``data.source`` as a tuple: one name, or a non-empty list of distinct names."""
    allowed = ", ".join(repr(n) for n in SOURCE_NAMES[:-1]) + f" or {SOURCE_NAMES[-1]!r}"
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ValueError(f"must be {allowed}, or a non-empty list of them")
    bad = [n for n in names if n not in SOURCE_NAMES]
    if bad:
        raise ValueError(f"unknown source(s) {bad}; each must be {allowed}")
    if len(set(names)) != len(names):
        raise ValueError("each source may be listed once")
    return tuple(names)


class SourceSettings(Settings):
    """``data`` less ``target``: which sources build the raw set (what the download stage reads).

    ``source`` is one name or a list of names (``[soundfont, local]``); it is stored as a
    tuple, in the order given.
    """

    KEY: ClassVar[str] = "data"

    source: Annotated[tuple[str, ...], BeforeValidator(_sources)]
    tinysol: TinysolSettings
    soundfont: SoundfontSettings
    local: LocalSettings


class DataSettings(SourceSettings):
    """``data``: the sources, and what a label is (``target``, read alone by clean and train)."""

    target: Literal["instrument", "family"]


# --------------------------------------------------------------------------- clean and features


class CleanSettings(Settings):
    """``clean``: the four values that define how audio is cut into windows.

    Stored in every model card, so the classifier cuts new audio exactly as the
    training data was cut.
    """

    KEY: ClassVar[str] = "clean"

    sample_rate: Annotated[int, Field(ge=8000, le=48000)]
    delta_time: Annotated[float, Field(gt=0, le=10)]
    threshold_db: Annotated[float, Field(ge=-200, lt=0)]
    envelope_ms: Annotated[float, Field(gt=0, le=1000)]

    @property
    def window_length(self) -> int:
        """Samples per window: ``round(sample_rate * delta_time)``."""
        return round(self.sample_rate * self.delta_time)

    @model_validator(mode="after")
    def _one_sample(self):
        if self.window_length < 1:
            raise ValueError(f"delta_time {self.delta_time} s gives no sample at {self.sample_rate} Hz")
        return self


class FeatureSettings(Settings):
    """``features``: the kapre log-mel front end inside every model."""

    KEY: ClassVar[str] = "features"

    n_mels: Annotated[int, Field(ge=8, le=512)]
    n_fft: Annotated[int, Field(ge=32, le=8192)]
    win_length: Annotated[int, Field(ge=16, le=8192)]
    hop_length: Annotated[int, Field(ge=1, le=8192)]

    @model_validator(mode="after")
    def _consistent(self):
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(f"n_mels ({self.n_mels}) must be <= n_fft // 2 + 1 ({self.n_fft // 2 + 1})")
        return self


# --------------------------------------------------------------------------- split


class SplitSettings(Settings):
    """``split``: which of TinySOL's folds are tested, and the library no model trains on.

    Each test fold ``t`` is validated (early stopping) by fold ``(t + 1) % 5`` and trained
    on the other three. ``unseen_library`` is one library's name or a list of them (a family
    of libraries built from the same samples, held out together), or null.
    """

    KEY: ClassVar[str] = "split"

    test_folds: Annotated[
        list[Annotated[int, Field(ge=0, lt=N_FOLDS)]], Field(min_length=1, max_length=N_FOLDS), AfterValidator(_unique)
    ]
    unseen_library: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=16), AfterValidator(_unique)]
        | None
    )

    @staticmethod
    def folds_of(test_fold: int) -> tuple:
        """``(validation fold, training folds)`` of one test fold."""
        if isinstance(test_fold, bool) or not isinstance(test_fold, int) or not 0 <= test_fold < N_FOLDS:
            raise ParameterError(f"test fold must be an integer in 0..{N_FOLDS - 1}, got {test_fold!r}")
        val = (test_fold + 1) % N_FOLDS
        return val, tuple(f for f in range(N_FOLDS) if f not in (test_fold, val))


# --------------------------------------------------------------------------- predict


class PredictSettings(Settings):
    """``predict``: how the fold models and the user models score a window.

    ``shift_average`` = r: a window's probabilities are the mean over its spectrum shifted by
    -r..r mel bands (the edge band repeated, as ``train.augment.mel_shift`` shifts training
    windows); 0 scores the window as it is. The averaging is part of the saved user model
    (:func:`instrclf.models.assemble`), so every export and ``instrclf classify`` carry it;
    it costs 2r + 1 back-end passes per window.
    """

    KEY: ClassVar[str] = "predict"

    shift_average: Annotated[int, Field(ge=0, le=16)]


# --------------------------------------------------------------------------- export


#: The formats ``export@<model>`` can write, in the order it writes and reports them.
EXPORT_FORMATS = ("tflite", "tflite_int8", "savedmodel", "onnx")


class ExportSettings(Settings):
    """``export``: which formats ``export@<model>`` writes, each checked against Keras on every clean window.

    Fewer formats make a quicker stage (each costs a conversion and a pass over every
    window); the model-registry entries of a format left out point at nothing.
    """

    KEY: ClassVar[str] = "export"

    formats: Annotated[list[Literal[EXPORT_FORMATS]], Field(min_length=1), AfterValidator(_unique)]


# --------------------------------------------------------------------------- models


#: Keras dtype policies a back end may train in; softmax and the regularised dense layer stay float32.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


class ModelConfig(Settings):
    """Base of the per-model knobs (``models.<name>``): the training recipe, then the architecture.

    ``epochs`` ends the cosine schedule, ``batch_size`` is the global batch (split across
    replicas under ``train.distribute``), ``learning_rate`` is the schedule's peak,
    and ``precision`` the Keras dtype policy of the back end.
    """

    NAME: ClassVar[str] = ""

    epochs: Annotated[int, Field(ge=1, le=1000)]
    batch_size: Annotated[int, Field(ge=1, le=8192)]
    learning_rate: Annotated[float, Field(gt=0, le=1)]
    precision: Literal[PRECISIONS]


class Conv1dConfig(ModelConfig):
    """``models.conv1d``: 1-D convolutions over frequency, frame by frame."""

    KEY: ClassVar[str] = "models.conv1d"
    NAME: ClassVar[str] = "conv1d"

    filters: Annotated[list[Width], Field(min_length=1, max_length=8)]
    kernel_size: Annotated[int, Field(ge=1, le=64)]
    dense: Width
    dropout: Dropout
    l2: L2


class Conv2dConfig(ModelConfig):
    """``models.conv2d``: 2-D convolutions over time x frequency."""

    KEY: ClassVar[str] = "models.conv2d"
    NAME: ClassVar[str] = "conv2d"

    time_pool: TimePool
    filters: Annotated[list[Width], Field(min_length=1, max_length=8)]
    kernel_sizes: Annotated[list[Annotated[int, Field(ge=1, le=15)]], Field(min_length=1, max_length=8)]
    dense: Width
    dropout: Dropout
    l2: L2

    @model_validator(mode="after")
    def _same_length(self):
        if len(self.filters) != len(self.kernel_sizes):
            raise ValueError(
                f"filters and kernel_sizes must have the same length, got {len(self.filters)} and {len(self.kernel_sizes)}"
            )
        return self


class LstmConfig(ModelConfig):
    """``models.lstm``: per-frame dense, a bidirectional LSTM, skip concatenation."""

    KEY: ClassVar[str] = "models.lstm"
    NAME: ClassVar[str] = "lstm"

    time_pool: TimePool
    frame_dense: Width
    units: Width
    dense: Annotated[list[Width], Field(min_length=2, max_length=2)]
    head: Width
    dropout: Dropout
    l2: L2


class BaselineConfig(ModelConfig):
    """``models.baseline``: mean log-mel over time into one softmax layer."""

    KEY: ClassVar[str] = "models.baseline"
    NAME: ClassVar[str] = "baseline"

    l2: L2


#: Model name -> its config class: the one list of models (each has its back end in
#: ``instrclf/backends/<name>.py``, tests/test_models.py checks both ways).
MODEL_CONFIGS = {cls.NAME: cls for cls in (Conv1dConfig, Conv2dConfig, LstmConfig, BaselineConfig)}

#: The model names, in :data:`MODEL_CONFIGS`'s order.
MODEL_NAMES = tuple(MODEL_CONFIGS)


# --------------------------------------------------------------------------- training


class AugmentSettings(Settings):
    """``train.augment``: training-time transforms of the spectrograms (0 or null: off).

    See :mod:`instrclf.augment`; validation, test and unseen data are never augmented.
    """

    KEY: ClassVar[str] = "train.augment"

    eq_db: Annotated[float, Field(ge=0, le=40)]
    mel_shift: Annotated[int, Field(ge=0, le=32)]
    freq_mask: Annotated[int, Field(ge=0, le=256)]
    time_mask: Annotated[int, Field(ge=0, le=1000)]
    noise_snr_db: _span(-20, 100) | None


class TrainSettings(Settings):
    """``train``: which models are trained, and what every model's training shares.

    Each model's own recipe (epochs, batch size, peak learning rate, precision) lives
    with its knobs in ``models.<name>``: the models converge at different speeds.
    """

    KEY: ClassVar[str] = "train"

    models: Annotated[list[Literal[MODEL_NAMES]], Field(min_length=1), AfterValidator(_unique)]
    warmup_epochs: Annotated[float, Field(ge=0, le=1000)]
    patience: Annotated[int, Field(ge=0, le=1000)]
    distribute: Literal["default", "mirrored", "multi_worker"]
    threads: Annotated[int, Field(ge=1, le=1024)] | None
    augment: AugmentSettings
    #: Library -> how many times more often training draws its windows (1 for a library not
    #: listed); training windows only. Names are checked against the data at train time.
    library_weights: dict[Annotated[str, Field(min_length=1)], Annotated[float, Field(gt=0, le=1000)]]
    #: Degree of the polynomial over the mel bands that is each library's colouring
    #: (:mod:`instrclf.colour`), replaced by the training libraries' average; None: off.
    library_colour: Annotated[int, Field(ge=0, le=12)] | None


def check_model(name: str) -> str:
    """``name`` if it is a model of :data:`MODEL_CONFIGS`, else a one-line ParameterError listing them."""
    if name not in MODEL_CONFIGS:
        raise ParameterError(f"model must be one of {list(MODEL_NAMES)}, got {name!r}")
    return name


def model_config(params: dict, name: str) -> ModelConfig:
    """The typed knobs of model ``name`` from ``models.<name>``."""
    return section(params, MODEL_CONFIGS[check_model(name)])


# --------------------------------------------------------------------------- one training


#: The keys of ``train`` that a training reads (not ``train.models``: which models train is the matrix's business).
TRAIN_KEYS = ("warmup_epochs", "patience", "distribute", "threads", "augment", "library_weights", "library_colour")


@dataclass(frozen=True)
class TrainingJob:
    """One training, built once from the params: which model, which fold, and every setting it reads.

    :meth:`from_params` reads the train stage's keys (``PARAMS`` in stages/train.py, its
    ``params:`` in dvc.yaml; tests/test_dvc_yaml.py compares them) and is what
    :func:`instrclf.train.run` and :func:`instrclf.train.fit` take; benchmarks and tests vary a
    field with :func:`dataclasses.replace`. ``clean`` and ``features`` are read whole: the
    model card records them, and the spectrograms' reader checks them.
    """

    model: str
    fold: int
    seed: int
    target: str
    config: ModelConfig
    clean: CleanSettings
    features: FeatureSettings
    unseen_library: str | list | None
    warmup_epochs: float
    patience: int
    distribute: str
    threads: int | None
    augment: AugmentSettings
    library_weights: dict
    library_colour: int | None

    @classmethod
    def from_params(cls, params: dict, *, model: str, fold: int) -> "TrainingJob":
        """The job of ``train@<model>-<fold>``; a bad key or fold is a one-line ParameterError."""
        SplitSettings.folds_of(fold)
        degree, n_mels = TrainSettings.key(params, "library_colour"), section(params, FeatureSettings).n_mels
        if degree is not None and degree >= n_mels:
            raise ParameterError(f"train.library_colour ({degree}) must be < features.n_mels ({n_mels}): "
                                 "a polynomial of that degree needs more mel bands")
        return cls(
            model=model,
            fold=fold,
            seed=seed(params),
            target=DataSettings.key(params, "target"),
            config=model_config(params, model),
            clean=section(params, CleanSettings),
            features=section(params, FeatureSettings),
            unseen_library=SplitSettings.key(params, "unseen_library"),
            **{name: TrainSettings.key(params, name) for name in TRAIN_KEYS},
        )
