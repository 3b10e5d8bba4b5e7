"""benchmarks/scale.py's grown raw sets: ``f`` instances of every note, the first the note itself, the others varied."""

from pathlib import Path

import numpy as np
import soundfile as sf
from synthetic import load_benchmark, make_raw_dir

from instrclf import layout



def scale_module():
    return load_benchmark("scale")


def test_a_grown_raw_set_holds_every_note_factor_times_in_its_fold(tmp_path):
    scale = scale_module()
    source = make_raw_dir(tmp_path / "raw")
    assert scale.grow_raw(source, tmp_path / "x3", factor=3) == 9
    grown = layout.read_metadata(tmp_path / "x3")  # a valid raw layout, every file present
    original = layout.read_metadata(source)
    assert len(grown) == 3 * len(original)
    for row in original.itertuples():
        stem = Path(row.Path).with_suffix("").as_posix()
        copies = grown[grown["Path"].str.startswith(stem)]
        assert len(copies) == 3 and set(copies["fold"]) == {row.fold} and set(copies["instrument"]) == {row.instrument}
        first = (tmp_path / "x3" / "audio" / row.Path).read_bytes()
        assert first == (source / "audio" / row.Path).read_bytes()
        others = [sf.read(tmp_path / "x3" / "audio" / p)[0] for p in copies["Path"] if p != row.Path]
        assert not np.array_equal(others[0], others[1])  # each instance its own seeded variation
    again = scale.grow_raw(source, tmp_path / "again", factor=3)  # and the same on every run
    assert again == 9 and all((tmp_path / "again" / "audio" / p).read_bytes() == (tmp_path / "x3" / "audio" / p).read_bytes()
                              for p in grown["Path"])
    assert scale.grow_raw(source, tmp_path / "two", factor=1, notes=2) == 2
