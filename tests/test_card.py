"""Tests of the model card and the files' layout (instrclf.card): no TensorFlow, no Keras."""

import json
from pathlib import Path

import pytest
import yaml
from synthetic import CLASS_F0, tiny_card

from instrclf.card import card_path, export_dir, export_paths, parse_card, read_card
from instrclf.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
LABELS = sorted(CLASS_F0)


def card_json(**changes):
    """A valid card's JSON (as models.save writes it), with top-level ``changes`` applied."""
    return json.dumps(json.loads(tiny_card("baseline", labels=LABELS, test_folds=[0]).model_dump_json()) | changes)


def message(excinfo):
    return str(excinfo.value)


def test_a_saved_card_reads_back_equal(tmp_path):
    card = tiny_card("conv1d", labels=LABELS, test_folds=[0, 1], unseen_library=["A", "B"])
    path = card_path(tmp_path / "conv1d.keras")
    path.write_text(card.model_dump_json(), encoding="utf-8")
    assert read_card(path) == card
    assert parse_card(card.model_dump_json().encode(), name="metadata") == card  # bytes, as LiteRT metadata


def test_the_card_lies_beside_the_model_as_json(tmp_path):
    assert card_path(tmp_path / "conv2d.keras") == tmp_path / "conv2d.json"
    assert card_path("models/export/lstm/lstm.tflite") == Path("models/export/lstm/lstm.json")


def test_a_missing_card_names_the_file_and_where_it_belongs(tmp_path):
    with pytest.raises(DataError) as excinfo:
        read_card(tmp_path / "m.json")
    assert message(excinfo) == f"{tmp_path / 'm.json'}: model card not found (it is saved beside the .keras file)"


def test_an_unreadable_card_says_it_is_the_model_card(tmp_path):
    path = tmp_path / "m.json"
    path.write_bytes(b'{"format": 1, "model": "\xff"}')  # not UTF-8
    with pytest.raises(DataError) as excinfo:
        read_card(path)
    assert message(excinfo).startswith(f"{path}: not readable model card (")


@pytest.mark.parametrize("text, expected", [
    (card_json(labels=["a"]), "labels: List should have at least 2 items"),
    (card_json(test_folds=[]), "test_folds: List should have at least 1 item"),
    (card_json(seed="seven"), "seed: Input should be a valid integer"),
    (card_json(model="resnet"), "model: Input should be"),
    (card_json(clean={"sample_rate": "fast"}), "clean.sample_rate: "),
    (card_json(colour_degree=-1, colour_reference=[0.0] * 32), "colour_degree: Input should be greater than or equal to 0"),
    (card_json(colour_degree=3, colour_reference=[0.0] * 31 + [float("nan")]), "colour_reference.31: Input should be a finite number"),
    (card_json(colour_degree=3, colour_reference=[0.0] * 5), "(document): Value error, colour_reference has 5 values for 32 mel bands"),
    (card_json(colour_degree=12, colour_reference=None), "(document): Value error, colour_degree and colour_reference come together"),
    ("[1, 2]", "(document): Input should be an object"),
    ("not json", "(document): Invalid JSON"),
])
def test_a_bad_card_is_one_line_naming_the_file_and_the_field(tmp_path, text, expected):
    path = tmp_path / "m.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as excinfo:
        read_card(path)
    assert message(excinfo).startswith(f"{path}: bad model card: {expected}")
    assert "\n" not in message(excinfo)


def test_a_colour_degree_needs_more_mel_bands_than_its_degree():
    from synthetic import TINY_PARAMS

    few = {**TINY_PARAMS, "features": {**TINY_PARAMS["features"], "n_mels": 8}}
    text = json.dumps(json.loads(tiny_card("baseline", labels=LABELS, test_folds=[0], params=few).model_dump_json())
                      | {"colour_degree": 8, "colour_reference": [0.0] * 8})
    with pytest.raises(DataError, match=r"bad model card: \(document\): Value error, colour_degree 8 needs more than 8 mel "
                                        r"bands, the features have 8$"):
        parse_card(text, name="m.json")


def test_a_card_whose_config_does_not_fit_its_model_names_the_key():
    with pytest.raises(DataError) as excinfo:
        parse_card(card_json(config={"no_such_knob": 1}), name="models/x.json")
    assert message(excinfo).startswith("models/x.json: bad model card: ")
    assert "no_such_knob" in message(excinfo) and "\n" not in message(excinfo)


def test_export_layout_is_the_registry_of_dvc_yaml():
    """Every exported file dvc.yaml's registry names is where export_paths puts it, and no other."""
    document = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    registered = {entry["path"] for entry in document["artifacts"].values()}
    models = sorted(name for name, entry in document["artifacts"].items() if entry["path"].endswith(".keras"))
    assert models
    expected = set()
    for model in models:
        keras = Path("models") / f"{model}.keras"
        assert export_dir(keras) == Path("models/export") / model
        paths = export_paths(export_dir(keras), model)
        assert set(paths) == {"tflite", "tflite_int8", "savedmodel", "onnx"}
        expected |= {keras.as_posix()} | {p.as_posix() for p in paths.values()}
    assert registered == expected
    # each export stage depends on the card beside the model it exports
    deps = document["stages"]["export"]["deps"]
    assert card_path(Path("models/${item.model}.keras")).as_posix() in deps


def test_a_card_rewritten_with_whole_numbers_as_floats_reads_as_the_same_card():
    """A card passed through a JSON tool that writes 8000 as 8000.0 (or edited by hand) still reads the same."""
    card = json.loads(card_json())
    card["seed"] = float(card["seed"])
    card["test_folds"] = [float(fold) for fold in card["test_folds"]]
    card["clean"] = card["clean"] | {"sample_rate": float(card["clean"]["sample_rate"])}
    assert parse_card(json.dumps(card), name="edited.json") == parse_card(card_json(), name="saved.json")
