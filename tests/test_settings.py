"""instrclf.settings: every section refuses bad values with one line naming key, value and what is allowed."""

import copy
import re
from pathlib import Path

import pytest

from instrclf import settings
from instrclf.errors import ParameterError
from instrclf.settings import (
    BaselineConfig,
    CleanSettings,
    Conv1dConfig,
    Conv2dConfig,
    DataSettings,
    ExportSettings,
    FeatureSettings,
    LocalSettings,
    LstmConfig,
    PredictSettings,
    SoundfontSettings,
    SplitSettings,
    TinysolSettings,
    TrainSettings,
)

ROOT = Path(__file__).resolve().parents[1]
PARAMS = settings.load(ROOT / "params.yaml")

CLASSES = (
    DataSettings, TinysolSettings, SoundfontSettings, LocalSettings, CleanSettings, FeatureSettings,
    SplitSettings, PredictSettings, TrainSettings, ExportSettings, Conv1dConfig, Conv2dConfig, LstmConfig, BaselineConfig,
)

# (class, location inside its section, bad value, the path shown, what the message says is allowed)
UNKNOWN = [
    (DataSettings, ("sorce",), "soundfont", "data.sorce", "'source'"),
    (DataSettings, ("soundfont", "snr"), [40, 70], "data.soundfont.snr", "'snr_db'"),
    (TinysolSettings, ("base_ur",), "https://x", "data.tinysol.base_ur", "'base_url'"),
    (SoundfontSettings, ("snr_d",), [40, 70], "data.soundfont.snr_d", "'snr_db'"),
    (LocalSettings, ("pth",), "data/own", "data.local.pth", "'path'"),
    (CleanSettings, ("delta_tim",), 1.0, "clean.delta_tim", "'delta_time'"),
    (FeatureSettings, ("n_mel",), 128, "features.n_mel", "'n_mels'"),
    (SplitSettings, ("test_fold",), [0], "split.test_fold", "'test_folds'"),
    (TrainSettings, ("patienc",), 2, "train.patienc", "'patience'"),
    (ExportSettings, ("format",), ["tflite"], "export.format", "'formats'"),
    (PredictSettings, ("shift_averages",), 1, "predict.shift_averages", "'shift_average'"),
    (Conv1dConfig, ("epoch",), 12, "models.conv1d.epoch", "'epochs'"),
    (Conv1dConfig, ("kernel_sizes",), 4, "models.conv1d.kernel_sizes", "'kernel_size'"),
    (Conv2dConfig, ("kernel_size",), 3, "models.conv2d.kernel_size", "'kernel_sizes'"),
    (LstmConfig, ("unit",), 32, "models.lstm.unit", "'units'"),
    (BaselineConfig, ("l1",), 0.1, "models.baseline.l1", "'l2'"),
]
WRONG_TYPE = [
    (DataSettings, ("source",), 3, "data.source", "'soundfont', 'tinysol' or 'local'"),
    (TinysolSettings, ("md5",), ["abc"], "data.tinysol.md5", "must be a mapping"),
    (SoundfontSettings, ("libraries",), "TimGM6mb", "data.soundfont.libraries", "valid list"),
    (SoundfontSettings, ("snr_db",), [40, "x"], "data.soundfont.snr_db[1]", "valid number"),
    (LocalSettings, ("path",), 3, "data.local.path", "valid string"),
    (CleanSettings, ("sample_rate",), "16k", "clean.sample_rate", "valid integer"),
    (FeatureSettings, ("n_mels",), "128", "features.n_mels", "valid integer"),
    (SplitSettings, ("test_folds",), 0, "split.test_folds", "valid list"),
    (TrainSettings, ("models",), "conv1d", "train.models", "valid list"),
    (ExportSettings, ("formats",), "tflite", "export.formats", "valid list"),
    (PredictSettings, ("shift_average",), "1", "predict.shift_average", "valid integer"),
    (Conv1dConfig, ("filters",), 8, "models.conv1d.filters", "valid list"),
    (Conv2dConfig, ("dense",), "64", "models.conv2d.dense", "valid integer"),
    (LstmConfig, ("dense",), 64, "models.lstm.dense", "valid list"),
    (BaselineConfig, ("l2",), [0.1], "models.baseline.l2", "valid number"),
]
OUT_OF_RANGE = [
    (DataSettings, ("target",), "genre", "data.target", "'instrument' or 'family'"),
    (DataSettings, ("soundfont", "snr_db"), [40, 200], "data.soundfont.snr_db", "[-20, 120]"),
    (TinysolSettings, ("base_url",), "ftp://x", "data.tinysol.base_url", "match pattern"),
    (TinysolSettings, ("md5", "TinySOL.tar.gz"), "xyz", "data.tinysol.md5.TinySOL.tar.gz", "match pattern"),
    (SoundfontSettings, ("sample_rate",), 100, "data.soundfont.sample_rate", "greater than or equal to 8000"),
    (SoundfontSettings, ("note_seconds",), [2.2, 0.8], "data.soundfont.note_seconds", "min must be <= max"),
    (LocalSettings, ("path",), "", "data.local.path", "at least 1 character"),
    (CleanSettings, ("delta_time",), 100000, "clean.delta_time", "less than or equal to 10"),
    (CleanSettings, ("threshold_db",), 3.0, "clean.threshold_db", "less than 0"),
    (FeatureSettings, ("n_mels",), 4, "features.n_mels", "greater than or equal to 8"),
    (SplitSettings, ("test_folds",), [0, 5], "split.test_folds[1]", "less than 5"),
    (SplitSettings, ("test_folds",), [1, 1], "split.test_folds", "unique"),
    (Conv2dConfig, ("epochs",), 0, "models.conv2d.epochs", "greater than or equal to 1"),
    (LstmConfig, ("precision",), "bfloat16", "models.lstm.precision", "'float32', 'mixed_bfloat16' or 'mixed_float16'"),
    (LstmConfig, ("time_pool",), 0, "models.lstm.time_pool", "greater than or equal to 1"),
    (TrainSettings, ("models",), ["gru"], "train.models[0]", "'conv1d', 'conv2d', 'lstm' or 'baseline'"),
    (ExportSettings, ("formats",), ["tflite", "tfjs"], "export.formats[1]", "'tflite', 'tflite_int8', 'savedmodel' or 'onnx'"),
    (ExportSettings, ("formats",), ["onnx", "onnx"], "export.formats", "unique"),
    (ExportSettings, ("formats",), [], "export.formats", "at least 1 item"),
    (PredictSettings, ("shift_average",), -1, "predict.shift_average", "greater than or equal to 0"),
    (PredictSettings, ("shift_average",), 17, "predict.shift_average", "less than or equal to 16"),
    (Conv1dConfig, ("dropout",), 1.0, "models.conv1d.dropout", "less than 1"),
    (Conv2dConfig, ("l2",), -0.1, "models.conv2d.l2", "greater than or equal to 0"),
    (LstmConfig, ("dense",), [64], "models.lstm.dense", "at least 2 items"),
    (BaselineConfig, ("l2",), 2, "models.baseline.l2", "less than or equal to 1"),
]
BOOL_FOR_INT = [
    (SoundfontSettings, ("sample_rate",), True, "data.soundfont.sample_rate", "valid integer"),
    (CleanSettings, ("sample_rate",), True, "clean.sample_rate", "valid integer"),
    (FeatureSettings, ("hop_length",), False, "features.hop_length", "valid integer"),
    (SplitSettings, ("test_folds",), [True], "split.test_folds[0]", "valid integer"),
    (ExportSettings, ("formats",), [True], "export.formats[0]", "'tflite', 'tflite_int8', 'savedmodel' or 'onnx'"),
    (BaselineConfig, ("epochs",), True, "models.baseline.epochs", "valid integer"),
    (TrainSettings, ("patience",), True, "train.patience", "valid integer"),
    (PredictSettings, ("shift_average",), True, "predict.shift_average", "valid integer"),
    (Conv1dConfig, ("kernel_size",), True, "models.conv1d.kernel_size", "valid integer"),
    (Conv2dConfig, ("filters",), [8, True, 16, 32, 32], "models.conv2d.filters[1]", "valid integer"),
    (LstmConfig, ("units",), True, "models.lstm.units", "valid integer"),
    (BaselineConfig, ("l2",), True, "models.baseline.l2", "valid number"),
]
FLOAT_FOR_INT = [
    (SoundfontSettings, ("string_span_semitones",), 24.0, "data.soundfont.string_span_semitones", "valid integer"),
    (CleanSettings, ("sample_rate",), 16000.0, "clean.sample_rate", "valid integer"),
    (FeatureSettings, ("n_fft",), 512.0, "features.n_fft", "valid integer"),
    (SplitSettings, ("test_folds",), [0.0], "split.test_folds[0]", "valid integer"),
    (Conv1dConfig, ("batch_size",), 32.0, "models.conv1d.batch_size", "valid integer"),
    (Conv1dConfig, ("dense",), 64.0, "models.conv1d.dense", "valid integer"),
    (Conv2dConfig, ("kernel_sizes",), [7, 5, 3.0, 3, 3], "models.conv2d.kernel_sizes[2]", "valid integer"),
    (LstmConfig, ("head",), 32.0, "models.lstm.head", "valid integer"),
]
STRING_FOR_FLOAT = [
    (SoundfontSettings, ("detune_cents",), "1e-3", "data.soundfont.detune_cents", "valid number"),
    (CleanSettings, ("delta_time",), "1e-3", "clean.delta_time", "valid number"),
    (TrainSettings, ("warmup_epochs",), "1", "train.warmup_epochs", "valid number"),
    (Conv2dConfig, ("learning_rate",), "1e-3", "models.conv2d.learning_rate", "valid number"),
    (Conv1dConfig, ("l2",), "1e-3", "models.conv1d.l2", "valid number"),
    (Conv2dConfig, ("dropout",), "1e-3", "models.conv2d.dropout", "valid number"),
    (LstmConfig, ("l2",), "1e-3", "models.lstm.l2", "valid number"),
    (BaselineConfig, ("l2",), "1e-3", "models.baseline.l2", "valid number"),
]


def good(cls) -> dict:
    """A deep copy of the class's section of the real params.yaml."""
    return copy.deepcopy(settings.lookup(PARAMS, cls.KEY))


def with_value(cls, loc, value) -> dict:
    section = good(cls)
    target = section
    for part in loc[:-1]:
        target = target[part]
    target[loc[-1]] = value
    return section


def _id(case):
    return f"{case[0].__name__}-{case[3]}={case[2]!r}"


def test_every_class_is_covered():
    for cases in (UNKNOWN, WRONG_TYPE, OUT_OF_RANGE):
        assert {c[0] for c in cases} == set(CLASSES)
    ints = {c for c in CLASSES if any(f.annotation is not None and "int" in str(f.annotation) for f in c.model_fields.values())}
    assert ints - {DataSettings} <= {c[0] for c in BOOL_FOR_INT + FLOAT_FOR_INT}


@pytest.mark.parametrize("case", UNKNOWN + WRONG_TYPE + OUT_OF_RANGE + BOOL_FOR_INT + FLOAT_FOR_INT + STRING_FOR_FLOAT, ids=_id)
def test_bad_values_are_refused_naming_path_value_and_allowed(case):
    cls, loc, value, path, allowed = case
    with pytest.raises(ParameterError) as error:
        cls.from_params(with_value(cls, loc, value))
    message = str(error.value)
    assert "\n" not in message
    element = re.search(r"\[(\d+)\]$", path)
    shown = value[int(element[1])] if element else value  # a bad list entry is shown alone
    assert f"{path} = {shown!r}: " in message
    assert allowed in message


@pytest.mark.parametrize("case", UNKNOWN, ids=_id)
def test_unknown_keys_list_the_keys_of_their_own_section(case):
    cls, loc, value, path, allowed = case
    message = str(pytest.raises(ParameterError, cls.from_params, with_value(cls, loc, value)).value)
    assert message.startswith(f"{path} = {value!r}: unknown key; allowed: [")
    assert allowed in message.split("allowed:")[1]


@pytest.mark.parametrize(
    ("cls", "key"), [(cls, key) for cls in CLASSES for key in cls.model_fields], ids=lambda v: getattr(v, "__name__", v)
)
def test_missing_keys_are_named(cls, key):
    section = good(cls)
    del section[key]
    with pytest.raises(ParameterError, match=rf"^{cls.KEY}\.{key}: missing \(required\)$"):
        cls.from_params(section)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_real_params_validate(cls):
    value = settings.section(PARAMS, cls)
    assert isinstance(value, cls)
    with pytest.raises(Exception):  # frozen: a stage cannot change a setting behind the others' back
        setattr(value, next(iter(cls.model_fields)), None)


def test_every_stage_reads_its_keys_of_the_real_params_and_builds_its_settings():
    """The committed params.yaml is valid for every stage, read through exactly the keys the stage declares."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    for script in sorted((root / "stages").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"stage_{script.stem}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for model in settings.MODEL_NAMES if any("<model>" in k for k in module.PARAMS) else [None]:
            keys = [k.replace("<model>", model or "") for k in module.PARAMS]
            params = settings.load(root / "params.yaml", keys=keys)
            if script.stem == "train":
                job = settings.TrainingJob.from_params(params, model=model, fold=3)
                train = settings.section(PARAMS, TrainSettings)
                assert (job.model, job.fold, job.seed, job.target) == (model, 3, PARAMS["seed"], PARAMS["data"]["target"])
                assert job.config == settings.model_config(PARAMS, model) and job.unseen_library == "FluidR3_GM"
                assert (job.clean, job.features) == (settings.section(PARAMS, CleanSettings), settings.section(PARAMS, FeatureSettings))
                assert {k: getattr(job, k) for k in settings.TRAIN_KEYS} == {k: getattr(train, k) for k in settings.TRAIN_KEYS}
            elif script.stem == "download":
                assert settings.section(params, settings.SourceSettings).source == ("soundfont",)
    # A key that is not the stage's is not there to read: the section fails naming what is missing.
    with pytest.raises(ParameterError, match="data.target: missing"):
        settings.section(settings.load(root / "params.yaml", keys=["data.source", "data.tinysol", "data.soundfont", "data.local"]),
                         DataSettings)


def test_one_key_validates_as_its_section_does():
    """Settings.key: a stage that reads part of a section gets the same checks and messages as the whole section."""
    assert TrainSettings.key(PARAMS, "models") == ["conv1d", "conv2d", "lstm", "baseline"]
    assert settings.SplitSettings.key({"split": {"unseen_library": None}}, "unseen_library") is None
    family = {"split": {"unseen_library": ["TimGM6mb", "sf_GMbank"]}}
    assert settings.SplitSettings.key(family, "unseen_library") == ["TimGM6mb", "sf_GMbank"]
    for bad in ([], ["A", "A"], ["A", ""], ""):
        with pytest.raises(ParameterError, match=r"^split.unseen_library"):
            settings.SplitSettings.key({"split": {"unseen_library": bad}}, "unseen_library")
    for section, key, value, message in [
        (TrainSettings, "patience", -1, "train.patience = -1: Input should be greater than or equal to 0"),
        (TrainSettings, "threads", 1.0, "train.threads = 1.0: Input should be a valid integer"),
        (TrainSettings, "models", ["conv1d", "vgg"], "train.models[1] = 'vgg': Input should be"),
        (TrainSettings, "augment", {"eq_db": 1}, "train.augment.mel_shift: missing (required); train.augment.freq_mask: missing"),
        (DataSettings, "target", "genre", "data.target = 'genre': Input should be 'instrument' or 'family'"),
    ]:
        with pytest.raises(ParameterError) as error:
            section.key({section.KEY: {key: value}}, key)
        assert str(error.value).startswith(message)
        with pytest.raises(ParameterError) as whole:  # the same first message as the whole section's
            section.from_params({**PARAMS[section.KEY], key: value})
        assert message in str(whole.value)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("value", [[1, 2], "x", 3])
def test_a_section_that_is_not_a_mapping(cls, value):
    with pytest.raises(ParameterError, match=rf"^{re.escape(cls.KEY)} must be a mapping, got {re.escape(repr(value))}$"):
        cls.from_params(value)


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"models": ["lstm", "lstm"]}, r"^train.models = \['lstm', 'lstm'\]: entries must be unique$"),
    ],
)
def test_checks_across_keys_name_both(section, match):
    with pytest.raises(ParameterError, match=match):
        TrainSettings.from_params({**good(TrainSettings), **section})


def test_cross_key_checks_of_other_sections():
    with pytest.raises(ParameterError, match=r"^features: win_length \(600\) must be <= n_fft \(512\)$"):
        FeatureSettings.from_params({**good(FeatureSettings), "win_length": 600})
    with pytest.raises(ParameterError, match=r"filters and kernel_sizes must have the same length, got 5 and 4"):
        Conv2dConfig.from_params({**good(Conv2dConfig), "kernel_sizes": [7, 5, 3, 3]})
    with pytest.raises(ParameterError, match=r"md5 lacks \['TinySOL_metadata.csv'\]"):
        TinysolSettings.from_params({**good(TinysolSettings), "md5": {"TinySOL.tar.gz": "0" * 32}})


def test_several_problems_in_one_line():
    message = str(pytest.raises(ParameterError, TrainSettings.from_params, {**good(TrainSettings), "epoch": 1, "patience": True}).value)
    assert "train.epoch = 1: unknown key" in message and "train.patience = True" in message and "\n" not in message


@pytest.mark.parametrize("folds", [[0, 0], [5], [0, 1, 2, 3, 4, 0], [], [-1]])
def test_split_test_folds_refused(folds):
    with pytest.raises(ParameterError, match=r"^split\.test_folds"):
        SplitSettings.from_params({"test_folds": folds, "unseen_library": None})


@pytest.mark.parametrize("test_fold", range(5))
def test_folds_of(test_fold):
    validation, training = SplitSettings.folds_of(test_fold)
    assert validation == (test_fold + 1) % 5
    assert len(training) == 3 and list(training) == sorted(training)
    assert {test_fold, validation, *training} == set(range(5))


@pytest.mark.parametrize("test_fold", [5, -1, True, 1.0, "0"])
def test_folds_of_refuses(test_fold):
    with pytest.raises(ParameterError, match=rf"test fold must be an integer in 0..4, got {test_fold!r}"):
        SplitSettings.folds_of(test_fold)


@pytest.mark.parametrize("value", [True, -1, 2**32, 1.0, "42", None])
def test_seed_refused(value):
    with pytest.raises(ParameterError, match=rf"^seed must be an integer in 0..4294967295, got {value!r}$"):
        settings.seed({"seed": value})


def test_missing_keys_and_models():
    with pytest.raises(ParameterError, match=r"no key 'seed'"):
        settings.seed({})
    with pytest.raises(ParameterError, match=r"no key 'models.lstm'"):
        settings.model_config({"models": {}}, "lstm")
    with pytest.raises(ParameterError, match=r"model must be one of \['conv1d', 'conv2d', 'lstm', 'baseline'\], got 'gru'"):
        settings.model_config(PARAMS, "gru")
    with pytest.raises(ParameterError, match=r"no key 'data.soundfont'"):
        settings.lookup({"data": 1}, "data.soundfont")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (None, r"params file not found: .*params\.yaml$"),
        ("a: [1\n", r"params\.yaml is not valid YAML: "),
        ("- 1\n- 2\n", r"params\.yaml must hold a mapping, got list$"),
        ("", r"params\.yaml must hold a mapping, got NoneType$"),
    ],
    ids=["missing", "bad-yaml", "list", "empty"],
)
def test_load_errors_are_one_line(tmp_path, text, match):
    path = tmp_path / "params.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ParameterError, match=match) as error:
        settings.load(path)
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------- properties

import yaml  # noqa: E402
from hypothesis import example, given  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _yaml_round_trip(section: dict) -> dict:
    return yaml.safe_load(yaml.safe_dump(section))


@hypothesis_settings(max_examples=300)
@given(
    n_mels=st.integers(-2, 600),
    n_fft=st.integers(0, 9000),
    win_length=st.integers(0, 9000),
    hop_length=st.integers(-1, 9000),
)
@example(n_mels=33, n_fft=64, win_length=64, hop_length=32)  # the edges: as many bands as bins,
@example(n_mels=34, n_fft=64, win_length=64, hop_length=32)  # one more,
@example(n_mels=129, n_fft=256, win_length=257, hop_length=1)  # a window one longer than the FFT
def test_features_are_accepted_exactly_inside_their_bounds_and_round_trip(n_mels, n_fft, win_length, hop_length):
    values = {"n_mels": n_mels, "n_fft": n_fft, "win_length": win_length, "hop_length": hop_length}
    in_range = 8 <= n_mels <= 512 and 32 <= n_fft <= 8192 and 16 <= win_length <= 8192 and 1 <= hop_length <= 8192
    consistent = win_length <= n_fft and n_mels <= n_fft // 2 + 1
    if in_range and consistent:
        parsed = FeatureSettings.from_params(values)
        assert parsed.model_dump() == values
        assert FeatureSettings.from_params(_yaml_round_trip(parsed.model_dump())) == parsed
        return
    with pytest.raises(ParameterError) as error:
        FeatureSettings.from_params(values)
    message = str(error.value)
    assert message.startswith("features") and "\n" not in message
    if not in_range:  # every key out of its own range is named with its value
        for key, (low, high) in {"n_mels": (8, 512), "n_fft": (32, 8192), "win_length": (16, 8192), "hop_length": (1, 8192)}.items():
            if not low <= values[key] <= high:
                assert f"features.{key} = {values[key]}" in message
    elif win_length > n_fft:
        assert f"win_length ({win_length}) must be <= n_fft ({n_fft})" in message
    else:
        assert f"n_mels ({n_mels}) must be <= n_fft // 2 + 1 ({n_fft // 2 + 1})" in message


@hypothesis_settings(max_examples=200)
@given(
    sample_rate=st.one_of(st.integers(0, 60000), st.floats(8000, 48000), st.booleans()),
    delta_time=st.one_of(st.floats(-1, 12, allow_nan=False), st.just(0.0)),
    threshold_db=st.floats(-250, 5, allow_nan=False),
    envelope_ms=st.floats(-1, 1200, allow_nan=False),
)
def test_clean_settings_refuse_exactly_what_is_outside_their_bounds(sample_rate, delta_time, threshold_db, envelope_ms):
    values = {"sample_rate": sample_rate, "delta_time": delta_time, "threshold_db": threshold_db, "envelope_ms": envelope_ms}
    bad = {
        "sample_rate": isinstance(sample_rate, (bool, float)) or not 8000 <= sample_rate <= 48000,
        "delta_time": not 0 < delta_time <= 10,
        "threshold_db": not -200 <= threshold_db < 0,
        "envelope_ms": not 0 < envelope_ms <= 1000,
    }
    if not any(bad.values()) and round(sample_rate * delta_time) >= 1:
        parsed = CleanSettings.from_params(values)
        assert parsed.window_length == round(sample_rate * delta_time) >= 1
        assert CleanSettings.from_params(_yaml_round_trip(parsed.model_dump())) == parsed
        return
    with pytest.raises(ParameterError) as error:
        CleanSettings.from_params(values)
    message = str(error.value)
    for key, wrong in bad.items():
        if wrong:
            assert f"clean.{key} = {values[key]!r}" in message
    if not any(bad.values()):
        assert "gives no sample" in message


@pytest.mark.parametrize(
    ("cls", "loc", "value", "key"),
    [
        (DataSettings, ("soundfont", "note_seconds"), [-1.0, 2.0], "data.soundfont.note_seconds"),
        (DataSettings, ("soundfont", "snr_db"), [-30, 10], "data.soundfont.snr_db"),
        (DataSettings, ("soundfont", "reverb_mix"), [-0.5, 0.5], "data.soundfont.reverb_mix"),
        (DataSettings, ("soundfont", "snr_db"), [10, 130], "data.soundfont.snr_db"),
    ],
    ids=["note-seconds-low", "snr-low", "mix-low", "snr-high"],
)
def test_a_range_with_either_end_outside_its_bounds_is_refused(cls, loc, value, key):
    with pytest.raises(ParameterError, match=rf"{re.escape(key)} = .*both ends must lie in"):
        cls.from_params(with_value(cls, loc, value))


# Mutation run (benchmarks/mutation.py): cases beside the tested ones that mutants survived.


def test_load_reads_params_yaml_of_the_current_folder_by_default(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text("seed: 7\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert settings.load() == {"seed": 7}


def test_bad_yaml_is_described_in_the_parsers_words_on_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("a: [1\n", encoding="utf-8")
    with pytest.raises(ParameterError) as error:
        settings.load(path)
    message = str(error.value)
    assert message.startswith(f"{path} is not valid YAML: while parsing a flow sequence in \"")
    assert "expected ',' or ']', but got '<stream end>'" in message and "  " not in message


@pytest.mark.parametrize("value", [0, 64, 2**32 - 1])
def test_seed_accepts_the_whole_range(value):
    assert settings.seed({"seed": value}) == value


def _data(**change):
    params = settings.load(Path(__file__).resolve().parents[1] / "params.yaml")
    return {**params["data"], **change}


def test_data_source_accepts_a_list_and_names_unknown_or_repeated_sources():
    assert settings.DataSettings.from_params(_data(source=["soundfont", "tinysol"])).source == ("soundfont", "tinysol")
    with pytest.raises(ParameterError) as error:
        settings.DataSettings.from_params(_data(source="zenodo"))
    assert "unknown source(s) ['zenodo']; each must be 'soundfont', 'tinysol' or 'local'" in str(error.value)
    with pytest.raises(ParameterError) as error:
        settings.DataSettings.from_params(_data(source=["tinysol", "tinysol"]))
    assert str(error.value).endswith(": each source may be listed once")


def test_a_section_that_is_a_value_where_a_mapping_belongs_says_so():
    with pytest.raises(ParameterError) as error:
        settings.DataSettings.from_params(_data(soundfont=5))
    assert str(error.value) == "data.soundfont = 5: must be a mapping"


def test_an_empty_section_lists_its_missing_keys_one_line_apiece():
    with pytest.raises(ParameterError) as error:
        settings.CleanSettings.from_params(None)  # `clean:` with nothing under it
    parts = str(error.value).split("; ")
    assert len(parts) == len(settings.CleanSettings.model_fields)
    assert all(p.startswith("clean.") and p.endswith(": missing (required)") for p in parts)


def test_a_range_given_as_one_number_is_refused_as_a_parameter_error():
    params = settings.load(Path(__file__).resolve().parents[1] / "params.yaml")
    soundfont = {**params["data"]["soundfont"], "note_seconds": 5}
    with pytest.raises(ParameterError, match=r"data\.soundfont\.note_seconds = 5: "):
        settings.SoundfontSettings.from_params(soundfont)


def test_a_range_may_sit_on_either_bound_and_be_a_single_value():
    params = settings.load(Path(__file__).resolve().parents[1] / "params.yaml")
    base = params["data"]["soundfont"]
    for change in ({"reverb_mix": [1, 1]}, {"release_seconds": [0, 0]}, {"reverb_mix": [0, 1]}, {"level_db": [-80, 0]}):
        got = settings.SoundfontSettings.from_params({**base, **change})
        (key, value), = change.items()
        assert getattr(got, key) == tuple(value)
    with pytest.raises(ParameterError) as error:
        settings.SoundfontSettings.from_params({**base, "reverb_mix": [0.6, 0.4]})
    assert str(error.value) == "data.soundfont.reverb_mix = [0.6, 0.4]: min must be <= max"


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_a_python_tag_in_the_params_file_is_refused_and_runs_nothing(tmp_path):
    """params.yaml is data: a tag that would call Python (here os.mkdir) is a YAML error, and nothing is run."""
    made = tmp_path / "made-by-the-params-file"
    (tmp_path / "params.yaml").write_text(f"seed: !!python/object/apply:os.mkdir [{str(made)!r}]\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=r"params\.yaml is not valid YAML"):
        settings.load(tmp_path / "params.yaml")
    assert not made.exists()


def test_a_library_colour_of_as_many_degrees_as_mel_bands_is_refused_naming_both_keys():
    from synthetic import TINY_PARAMS

    params = copy.deepcopy(TINY_PARAMS)
    params["features"] |= {"n_mels": 8}
    params["train"]["library_colour"] = 8
    with pytest.raises(ParameterError, match=r"^train.library_colour \(8\) must be < features.n_mels \(8\): "):
        settings.TrainingJob.from_params(params, model="baseline", fold=0)
    params["train"]["library_colour"] = 7
    assert settings.TrainingJob.from_params(params, model="baseline", fold=0).library_colour == 7
    params["train"]["library_colour"] = 13
    with pytest.raises(ParameterError, match=r"train.library_colour = 13: Input should be less than or equal to 12"):
        settings.TrainingJob.from_params(params, model="baseline", fold=0)
