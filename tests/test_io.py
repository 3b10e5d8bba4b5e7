import json
import os
import stat

import pytest

from instrclf.io import atomic_dir, atomic_file, write_json


def test_atomic_dir_replaces_only_on_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_file_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "a" / "f.json"
    with pytest.raises(ValueError):
        with atomic_file(path) as f:
            f.write("partial")
            raise ValueError
    assert list(path.parent.iterdir()) == []


def test_outputs_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_write_json_is_strict(tmp_path):
    write_json(tmp_path / "m.json", {"auc": float("nan"), "n": [1.0, float("inf")]})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}")) == {"auc": None, "n": [1.0, None]}
