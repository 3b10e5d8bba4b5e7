import json

import numpy as np
import pytest
import soundfile as sf
from synthetic import CLASS_F0, TINY_PARAMS, make_clean_dir, tone

from instrclf import cli, models, train


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model, meta, _ = train.run(TINY_PARAMS, name="baseline", clean_dir=make_clean_dir(root / "clean"))
    path = root / "baseline.keras"
    models.save(model, path, meta=meta)
    return path


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """A stereo 44.1-kHz flute-like tone of 1.7 s (three 0.5-s windows) and a silent file."""
    root = tmp_path_factory.mktemp("rec")
    rng = np.random.default_rng(3)
    y = tone(CLASS_F0["Fl"], sample_rate=44100, seconds=1.7, rng=rng)
    sf.write(root / "note.wav", np.stack([y, 0.5 * y], axis=1), 44100, subtype="PCM_24")
    sf.write(root / "silence.wav", np.zeros(44100, dtype=np.float32), 44100)
    return root


def test_classify_prints_ranked_labels_as_json(model_path, recordings, capsys):
    assert cli.classify(["--model", str(model_path), "--top", "2", "--json", str(recordings / "note.wav")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["file"].endswith("note.wav")
    probs = [t["probability"] for t in out["top"]]
    assert [t["label"] for t in out["top"]][0] in CLASS_F0 and len(probs) == 2
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_classify_file_averages_the_windows_cut_like_clean(model_path, recordings):
    from instrclf.audio import load, prepare

    model, meta = models.load(model_path)
    probs = cli.classify_file(model, meta, recordings / "note.wav")
    y, sr = load(recordings / "note.wav")
    windows = prepare(y, sr, **meta["clean"])
    assert windows.shape == (3, 4000)
    np.testing.assert_allclose(probs, model.predict(windows[..., None], verbose=0).mean(axis=0), rtol=1e-6)


def test_classify_reports_silent_files(model_path, recordings, capsys):
    cli.classify(["--model", str(model_path), str(recordings / "silence.wav")])
    assert "silence.wav: silent" in capsys.readouterr().out


def test_main_reports_errors_in_one_line(tmp_path, recordings):
    with pytest.raises(SystemExit, match="error: model .*absent.keras not found"):
        cli.main(["classify", "--model", str(tmp_path / "absent.keras"), str(recordings / "note.wav")])
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2
