"""A saved model's card and where its files lie, readable without TensorFlow or Keras.

A user model ``models/<model>.keras`` has its :class:`ModelCard` beside it
(``models/<model>.json``): its labels and every setting that shaped its input. Its exports
(``export@<model>``) lie in ``models/export/<model>/`` (:func:`export_dir`), one file per
format (:func:`export_paths`), each with a copy of the card beside it. ``instrclf classify``
reads all of this before it decides whether it needs Keras at all, so nothing here imports it.
"""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError, model_validator

from .errors import DataError, ParameterError
from .io import read_text
from .settings import MODEL_CONFIGS, CleanSettings, FeatureSettings, ModelConfig

#: Version of the model card format; a card of another version is refused.
CARD_FORMAT = 1


class ModelCard(BaseModel):
    """What a saved model needs to be used: its labels and every setting that shaped its input."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    format: Literal[CARD_FORMAT]
    model: Literal[tuple(MODEL_CONFIGS)]
    labels: list[str] = Field(min_length=2)
    target: Literal["instrument", "family"]
    clean: CleanSettings
    features: FeatureSettings
    config: dict
    test_folds: list[int] = Field(min_length=1)
    unseen_library: str | list[str] | None  # split.unseen_library as trained: one name, a family, or none
    seed: int
    #: ``train.library_colour`` as trained, and the colouring every library was brought to
    #: (:mod:`instrclf.colour`; one value per mel band); both None when off.
    colour_degree: Annotated[int, Field(ge=0, le=12)] | None = None
    colour_reference: list[FiniteFloat] | None = None

    @model_validator(mode="after")
    def _config_fits(self):
        MODEL_CONFIGS[self.model].from_params(self.config)
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")
        if (self.colour_degree is None) != (self.colour_reference is None):
            raise ValueError("colour_degree and colour_reference come together")
        if self.colour_reference is not None and len(self.colour_reference) != self.features.n_mels:
            raise ValueError(f"colour_reference has {len(self.colour_reference)} values for {self.features.n_mels} mel bands")
        if self.colour_degree is not None and self.colour_degree >= self.features.n_mels:
            raise ValueError(f"colour_degree {self.colour_degree} needs more than {self.colour_degree} mel bands, "
                             f"the features have {self.features.n_mels}")
        return self

    @property
    def typed_config(self) -> ModelConfig:
        """The model's knobs as their typed config class."""
        return MODEL_CONFIGS[self.model].from_params(self.config)


def card_path(model_path) -> Path:
    """Where the card of a saved model (or of an export) sits: beside it, ``<name>.json``."""
    return Path(model_path).with_suffix(".json")


def read_card(path) -> ModelCard:
    """Read and validate a model card; one-line DataError naming the file and the field."""
    path = Path(path)
    text = read_text(path, missing="model card not found (it is saved beside the .keras file)", what="model card")
    return parse_card(text, name=path)


def parse_card(text, *, name) -> ModelCard:
    """A model card from its JSON ``text`` (str or bytes); one-line DataError naming ``name`` and the field.

    Parameters
    ----------
    text : str or bytes
        The card's JSON, from its file or from a LiteRT model's metadata.
    name : str or Path
        What the text came from, for the error message.
    """
    try:
        return ModelCard.model_validate_json(text, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise DataError(f"{name}: bad model card: {field}: {first['msg']}") from None
    except ParameterError as exc:
        raise DataError(f"{name}: bad model card: {exc}") from None


def export_dir(model_path) -> Path:
    """The folder ``export@<model>`` writes from ``models/<model>.keras``: ``models/export/<model>``."""
    model_path = Path(model_path)
    return model_path.parent / "export" / model_path.stem


def export_paths(out_dir, model: str) -> dict:
    """Where each format of ``model`` is written inside ``out_dir``: ``{format: Path}``."""
    out_dir = Path(out_dir)
    return {
        "tflite": out_dir / f"{model}.tflite",
        "tflite_int8": out_dir / f"{model}.int8.tflite",
        "savedmodel": out_dir / f"{model}.savedmodel",
        "onnx": out_dir / f"{model}.onnx",
    }
