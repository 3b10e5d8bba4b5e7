"""benchmarks/own_samples.py: which instruments a library samples itself, and the held-out figure split by it."""

import json

import pandas as pd
import pytest
from synthetic import load_benchmark

from instrclf.errors import DataError


def own_samples_module():
    return load_benchmark("own_samples")


def overlap_file():
    """Two libraries written as library_overlap.py writes them (lists and dicts as their repr)."""
    every_cb_key = list(range(28, 68))
    return {"libraries": {
        "A": {"missing_programs": "[]", "programs_sharing_samples": "['Vn=Va', 'Hn=Tbn']", "silent_keys": "{}"},
        "B": {"missing_programs": "['Va']", "programs_sharing_samples": "[]",
              "silent_keys": repr({"Cb": every_cb_key, "Vc": [36]})},
    }}


def test_an_instrument_has_samples_of_its_own_where_a_library_plays_it_and_shares_them_with_no_other():
    own = own_samples_module().own_samples(overlap_file(), ["A", "B"])
    assert own["Va"] == []  # A plays the violin's samples, B has none
    assert own["Vn"] == ["B"]  # A shares them with the viola
    assert own["Hn"] == own["Tbn"] == ["B"]
    assert own["Cb"] == ["A"]  # silent on every key of B: B does not play it
    assert own["Vc"] == ["A", "B"]  # one silent key is not a missing instrument
    assert set(own) == set(own_samples_module().INSTRUMENTS)


def test_a_training_library_missing_from_the_overlap_file_is_named():
    with pytest.raises(DataError, match=r"no libraries \['C'\]"):
        own_samples_module().own_samples(overlap_file(), ["A", "C"])


def test_the_held_out_accuracy_splits_between_sampled_and_borrowed_instruments():
    module = own_samples_module()
    own = module.own_samples(overlap_file(), ["A", "B"])
    rows = [("test", "Va", "Va"), ("test", "Vn", "Fl"),  # test rows never count
            ("unseen", "Va", "Vn"), ("unseen", "Va", "Va"), ("unseen", "Vn", "Vn"),
            ("unseen", "Vn", "Vn"), ("unseen", "Cb", "Vc"), ("unseen", "Fl", "Fl")]
    predictions = pd.DataFrame(rows, columns=["set", "label", "predicted"])
    split = module.split_accuracy(predictions, own)
    assert split["all"] == {"accuracy": round(4 / 6, 4), "notes": 6}
    assert split["borrowed"] == {"accuracy": 0.5, "notes": 2}  # the violas
    assert split["own_samples"] == {"accuracy": 0.75, "notes": 4}
    assert split["instruments"]["Cb"] == {"accuracy": 0.0, "notes": 1}
    with pytest.raises(DataError, match="no held-out notes"):
        module.split_accuracy(predictions[predictions["set"] == "test"], own)
    families = predictions.assign(label="Strings", predicted="Strings")
    with pytest.raises(DataError, match=r"labels \['Strings'\] are not instruments"):
        module.split_accuracy(families, own)


def test_the_script_reads_a_runs_predictions_and_names_the_training_libraries(tmp_path, capsys):
    (tmp_path / "overlap.json").write_text(json.dumps(overlap_file()))
    folder = tmp_path / "predictions"
    folder.mkdir()
    pd.DataFrame({"set": ["test", "test", "unseen", "unseen"], "library": ["A", "B", "H", "H"],
                  "label": ["Va", "Vn", "Va", "Vn"], "predicted": ["Va", "Vn", "Vn", "Vn"]}).to_csv(folder / "conv2d.csv")
    out = tmp_path / "own.json"
    own_samples_module().main(["--overlap", str(tmp_path / "overlap.json"), "--predictions", str(folder),
                               "--models", "conv2d", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["training_libraries"] == ["A", "B"] and result["held_out"] == ["H"]
    assert result["models"]["conv2d"]["borrowed"] == {"accuracy": 0.0, "notes": 1}
    assert "| conv2d | 0.500 (2) | 1.000 (1) | 0.000 (1) |" in capsys.readouterr().out
