"""How fast does training reach a given accuracy? The classic recipe vs the project's, per model.

For each model (``--models``: conv1d, conv2d, lstm), on the same machine and data (the
clean windows of ``--clean``; test fold 0, validation fold 1, training folds 2-4, the
unseen library ``split.unseen_library`` left out), two sides are trained one after the
other, each in its own subprocess (so each has its own peak RSS):

- **classic**: the classic notebooks' recipe. The kapre log-mel front end (``features.*``
  of params) sits inside the model and runs on every step, then
  ``LayerNormalization(axis=2)`` and the classic back end in float32: conv1d as
  ``TimeDistributed(Conv1D(w, k))`` layers over frequency (``models.conv1d`` filters and
  kernel, tanh first then relu, ``MaxPooling2D(2, 2)`` between, global max, dropout,
  ``Dense(dense, relu)`` with activity L2, softmax); conv2d as
  ``instrclf.backends.conv2d.stack`` and lstm as ``instrclf.backends.lstm.stack``,
  both on every frame (``time_pool`` 1). Batch 16, Adam at a constant 1e-3, one-hot
  categorical cross-entropy, a ``keras.utils.PyDataset`` (Keras 3's ``Sequence``) that
  reads each batch's WAV windows from disk with soundfile (the training one drops the
  last partial batch and reshuffles each epoch, as the notebooks' generator did; the
  validation one keeps every window), no early stopping, at most ``--epochs`` epochs and
  ``--max-seconds`` of wall time (checked after every batch). The best validation
  epoch's weights are kept in memory and restored at the end (the notebooks' checkpoint).
- **project**: what :func:`instrclf.train.run` does for test fold 0 (through the same
  :func:`instrclf.train.fit`, with a timing callback) with the model's
  recipe from params (``models.<name>``: epochs, batch size, peak rate, precision;
  ``train.*``: warm-up, patience, augmentation, threads), built from the package's own
  functions: the windows are read and their spectrograms computed once
  (:func:`instrclf.features.spectrograms`), the back end is trained from memory
  (:func:`instrclf.train.dataset`) with the cosine schedule, and the best validation
  epoch's weights are restored. Reading the windows and computing the spectrograms is
  counted in its time to accuracy.

Both sides seed Python, NumPy, Keras and TensorFlow with params' ``seed`` and run with
TensorFlow's op determinism (:func:`instrclf.train.seed_everything`) and ``train.threads``.

Reported per model and side: training samples/s (windows per second of the training part
of the epochs: from each epoch's start to its validation's start); the wall time from
the start (model built, for the project also windows read and spectrograms computed) to
the end of the first epoch whose validation WINDOW accuracy reaches ``--level``, and the
classic/project ratio of those times; the test fold's FILE accuracy (each recording's
mean window probabilities, argmax) with the restored weights; the peak RSS of the
training process; and the share of the machine's arithmetic ceiling: a 2048x2048
float32 matmul, repeated after a warm-up, gives the sustained GFLOP/s; each back end's
forward FLOPs per window are counted from its layers (2 per multiply-add of every
convolution, dense and LSTM gate; elementwise work not counted), training FLOPs are 3x
forward (plus, on the classic side, the front end's forward FLOPs, run on every step);
ceiling samples/s = GFLOP/s / training FLOPs, share = measured / ceiling. TensorFlow's
profiler count of the same forward pass is printed beside it as a check (it does not see
inside the LSTM's while loop, so it undercounts the recurrent model).

    python benchmarks/train_speed.py                                  # conv1d, conv2d, lstm on data/clean
    python benchmarks/train_speed.py --models conv1d --level 0.9 --max-seconds 300
    python benchmarks/train_speed.py --clean /other/clean --params /other/params.yaml \\
        --models conv1d --epochs 1 --max-seconds 30 --limit 600    # smoke run

Timings move with whatever else runs on the machine; the load average at the start is
recorded. Not a test: run on demand.
"""

import argparse
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from machine import cpu_model, version  # benchmarks/machine.py (the script's folder is on sys.path)
import numpy as np

from instrclf import settings
from instrclf.io import write_json
from instrclf.settings import CleanSettings, FeatureSettings, SplitSettings, TrainSettings

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("conv1d", "conv2d", "lstm")
SIDES = ("classic", "project")
TEST_FOLD = 0

#: The classic notebooks' recipe.
CLASSIC_BATCH = 16
CLASSIC_RATE = 1e-3

#: Matmul used to measure the machine's sustained arithmetic rate.
MATMUL_N = 2048
MATMUL_SECONDS = 3.0

#: Training FLOPs per window as a multiple of forward FLOPs (forward + two backward matmuls).
TRAIN_FACTOR = 3

#: Inference batch for the test fold: memory only, never results.
PREDICT_BATCH = 256


# --------------------------------------------------------------------------- shared helpers (workers)


def _say(*parts):
    """A progress line on stdout (the parent passes it on to its stderr)."""
    print(*parts, flush=True)


def _note(text):
    """A progress line of the parent, on stderr (stdout carries the table)."""
    print(text, file=sys.stderr, flush=True)


def _peak_rss_mib() -> float:
    """This process's peak resident set so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _read_settings(args) -> dict:
    params = settings.load(args.params)
    return {
        "params": params,
        "seed": settings.seed(params),
        "clean": settings.section(params, CleanSettings),
        "features": settings.section(params, FeatureSettings),
        "split": settings.section(params, SplitSettings),
        "train": settings.section(params, TrainSettings),
    }


def _limited(frame, limit):
    """At most ``limit`` rows of ``frame``, evenly spread (smoke runs); all rows without a limit."""
    if limit is None or len(frame) <= limit:
        return frame
    rows = np.unique(np.linspace(0, len(frame) - 1, limit).round().astype(int))
    return frame.iloc[rows].reset_index(drop=True)


def _fold_data(args, split):
    """``(labels, train, val, test)`` index rows of test fold 0, the unseen library left out."""
    from instrclf import data, layout

    index = layout.read_index(args.clean)
    labels = data.class_names(index)
    sets = data.fold_sets(index, test_fold=TEST_FOLD, unseen_library=split.unseen_library)
    return labels, _limited(sets.train, args.limit), _limited(sets.val, args.limit), _limited(sets.test, args.limit)


def _file_accuracy(rows, probs, labels) -> dict:
    """Test accuracy per recording (mean of its window probabilities, argmax) and per window."""
    from instrclf import data, evaluate

    notes = evaluate.aggregate(rows, probs, labels=labels)
    windows = float(np.mean(np.argmax(probs, axis=1) == data.encode(rows["label"], labels)))
    return {
        "test_file_accuracy": float(np.mean(notes["predicted"] == notes["label"])),
        "test_window_accuracy": windows,
        "n_test_files": len(notes),
        "n_test_windows": len(rows),
    }


def _callbacks():
    """The Keras callbacks of the workers (defined once TensorFlow is imported)."""
    import keras

    class Timing(keras.callbacks.Callback):
        """Per epoch: training seconds (to the start of validation), samples, logs, wall time; the time cap."""

        def __init__(self, *, label, start, max_seconds, batch_size, per_epoch):
            super().__init__()
            self.label, self.start, self.max_seconds = label, start, max_seconds
            self.batch_size, self.per_epoch = batch_size, per_epoch
            self.epochs, self.capped = [], False

        def _over(self):
            if self.max_seconds is not None and time.perf_counter() - self.start >= self.max_seconds:
                self.model.stop_training = True
                self.capped = True

        def on_epoch_begin(self, epoch, logs=None):
            self._begin, self._validating, self._batches = time.perf_counter(), None, 0

        def on_train_batch_end(self, batch, logs=None):
            self._batches += 1
            self._over()

        def on_test_begin(self, logs=None):
            if self._validating is None:
                self._validating = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            end = time.perf_counter()
            last = epoch + 1 >= self.params.get("epochs", math.inf)
            logs = logs or {}
            record = {
                "epoch": epoch + 1,
                "train_seconds": (self._validating or end) - self._begin,
                "samples": min(self._batches * self.batch_size, self.per_epoch),
                "partial": self._batches * self.batch_size < self.per_epoch,
                "elapsed_seconds": end - self.start,
                **{k: float(v) for k, v in logs.items() if k in ("loss", "accuracy", "val_loss", "val_accuracy")},
            }
            self.epochs.append(record)
            _say(
                f"[{self.label}] epoch {record['epoch']}{' (partial)' if record['partial'] else ''}: "
                f"loss {record.get('loss', float('nan')):.3f} acc {record.get('accuracy', float('nan')):.3f} "
                f"val_acc {record.get('val_accuracy', float('nan')):.4f} | {record['train_seconds']:.1f} s training, "
                f"{record['samples'] / max(record['train_seconds'], 1e-9):.0f} samples/s, {record['elapsed_seconds']:.1f} s since start"
            )
            if not last:  # the cap only counts when it cuts the schedule short
                self._over()

    class BestWeights(keras.callbacks.Callback):
        """Keep the weights of the best validation accuracy epoch and restore them at the end (no stopping)."""

        def __init__(self):
            super().__init__()
            self.best, self.weights = -math.inf, None

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get("val_accuracy")
            if value is not None and value > self.best:
                self.best, self.weights = value, self.model.get_weights()

        def on_train_end(self, logs=None):
            if self.weights is not None:
                self.model.set_weights(self.weights)

    return Timing, BestWeights


def _summary(timing, *, level, n_train) -> dict:
    """The numbers of one training run from its per-epoch records."""
    epochs = timing.epochs
    train_seconds = sum(e["train_seconds"] for e in epochs)
    samples = sum(e["samples"] for e in epochs)
    val = [e.get("val_accuracy", -math.inf) for e in epochs]
    reached = next((e for e in epochs if e.get("val_accuracy", -math.inf) >= level), None)
    best = int(np.argmax(val)) if epochs else None
    # after the first epoch (graph tracing and warm-up), full epochs only
    steady = [e for e in epochs[1:] if not e["partial"]]
    steady_seconds = sum(e["train_seconds"] for e in steady)
    return {
        "epochs_run": len(epochs),
        "capped": timing.capped,
        "n_train_windows": n_train,
        "train_seconds": train_seconds,
        "samples_per_second": samples / train_seconds if train_seconds > 0 else None,
        "steady_samples_per_second": sum(e["samples"] for e in steady) / steady_seconds if steady_seconds > 0 else None,
        "first_epoch_train_seconds": epochs[0]["train_seconds"] if epochs else None,
        "total_seconds": epochs[-1]["elapsed_seconds"] if epochs else None,
        "reached_level": reached is not None,
        "seconds_to_level": reached["elapsed_seconds"] if reached else None,
        "epoch_at_level": reached["epoch"] if reached else None,
        "best_val_accuracy": val[best] if epochs else None,
        "best_epoch": best + 1 if epochs else None,
        "epochs": epochs,
    }


# --------------------------------------------------------------------------- the classic recipe


def classic_backend(name, *, config, input_shape, n_classes):
    """The classic notebooks' back end in float32: LayerNormalization over mel, then the stack."""
    import keras
    from keras import layers, regularizers

    from instrclf import backends

    inputs = keras.Input(tuple(input_shape), name="melspectrogram")
    x = layers.LayerNormalization(axis=2, name="batch_norm")(inputs)
    if name == "conv1d":
        for i, width in enumerate(config.filters):
            act = "tanh" if i == 0 else "relu"
            conv = layers.Conv1D(width, config.kernel_size, activation=act)
            x = layers.TimeDistributed(conv, name=f"td_conv_1d_{i}")(x)
            if i < len(config.filters) - 1:
                x = layers.MaxPooling2D((2, 2), name=f"max_pool_2d_{i}")(x)
        x = layers.GlobalMaxPooling2D(name="global_max_pooling_2d")(x)
        x = layers.Dropout(config.dropout, name="dropout")(x)
        x = layers.Dense(config.dense, activation="relu", activity_regularizer=regularizers.l2(config.l2), name="dense")(x)
        outputs = layers.Dense(n_classes, activation="softmax", name="softmax")(x)
    elif name in ("conv2d", "lstm"):
        stack = backends.stack_of(name)
        outputs = stack(x, n_classes=n_classes, config=config.model_copy(update={"time_pool": 1}))
    else:
        raise ValueError(f"no classic recipe for {name!r}")
    return keras.Model(inputs, outputs, name=f"classic_{name}_backend")


def classic_model(name, *, clean, features, config, n_classes):
    """Raw audio -> kapre front end -> classic back end, trained as one model."""
    import keras

    from instrclf.features import frontend

    front = frontend(clean=clean, features=features)
    back = classic_backend(name, config=config, input_shape=front.output_shape[1:], n_classes=n_classes)
    audio = keras.Input(front.input_shape[1:], name="audio")
    return keras.Model(audio, back(front(audio)), name=f"classic_{name}")


def window_sequence(clean_dir, rows, labels, *, n_samples, batch_size, shuffle, seed, drop_last):
    """A ``keras.utils.PyDataset`` reading each batch's windows from the clean shards, one-hot labels."""
    import keras

    from instrclf import data, layout

    class Windows(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()  # workers=1, no multiprocessing: Keras' defaults, as in the notebooks
            self.rows = rows.reset_index(drop=True)
            self.windows = layout.Windows(clean_dir, self.rows, n_samples=n_samples)
            self.y = keras.utils.to_categorical(data.encode(rows["label"], labels), num_classes=len(labels)).astype(np.float32)
            self.rng = np.random.RandomState(seed)
            self.order = np.arange(len(self.rows))
            if shuffle:
                self.rng.shuffle(self.order)

        def __len__(self):
            n = len(self.rows)
            return n // batch_size if drop_last else math.ceil(n / batch_size)

        def __getitem__(self, i):
            picked = self.order[i * batch_size : (i + 1) * batch_size]
            return self.windows.read(self.rows.iloc[picked]), self.y[picked]

        def on_epoch_end(self):
            if shuffle:
                self.rng.shuffle(self.order)

    return Windows()


def run_classic(args, name) -> dict:
    from instrclf import data, train
    from instrclf.runtime import filtered_stderr

    import keras

    s = _read_settings(args)
    train.set_threads(s["train"].threads)
    train.seed_everything(s["seed"])
    labels, rows_train, rows_val, rows_test = _fold_data(args, s["split"])
    config = settings.model_config(s["params"], name)
    n = s["clean"].window_length
    Timing, BestWeights = _callbacks()

    start = time.perf_counter()
    model = classic_model(name, clean=s["clean"], features=s["features"], config=config, n_classes=len(labels))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=CLASSIC_RATE), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    common = {"n_samples": n, "batch_size": CLASSIC_BATCH, "seed": s["seed"]}
    train_seq = window_sequence(args.clean, rows_train, labels, shuffle=True, drop_last=True, **common)
    val_seq = window_sequence(args.clean, rows_val, labels, shuffle=False, drop_last=False, **common)
    per_epoch = len(train_seq) * CLASSIC_BATCH
    timing = Timing(label=f"classic {name}", start=start, max_seconds=args.max_seconds, batch_size=CLASSIC_BATCH, per_epoch=per_epoch)
    with filtered_stderr():
        model.fit(train_seq, validation_data=val_seq, epochs=args.epochs, callbacks=[timing, BestWeights()], verbose=0)
    result = _summary(timing, level=args.level, n_train=len(rows_train))
    result.update(n_val_windows=len(rows_val), n_params=model.count_params(), peak_rss_mib=_peak_rss_mib(),
                  batch_size=CLASSIC_BATCH, epochs_cap=args.epochs, max_seconds=args.max_seconds,
                  samples_per_epoch=per_epoch)
    x_test = data.load_windows(args.clean, rows_test, n_samples=n)
    with filtered_stderr():
        probs = model.predict(x_test, batch_size=PREDICT_BATCH, verbose=0)
    result.update(_file_accuracy(rows_test, probs, labels))
    return result


# --------------------------------------------------------------------------- the project's training


def run_project(args, name) -> dict:
    """What the train stage does for test fold 0 (:func:`instrclf.train.fit`), with a timing callback."""
    from instrclf import data, features, train
    from instrclf.runtime import filtered_stderr

    s = _read_settings(args)
    job = settings.TrainingJob.from_params(s["params"], model=name, fold=TEST_FOLD)
    if job.distribute == "multi_worker":
        raise SystemExit("train.distribute multi_worker needs one process per worker: benchmark with default or mirrored")
    config = job.config
    train.set_threads(job.threads)
    replicas = train.strategy(job.distribute)
    labels, rows_train, rows_val, rows_test = _fold_data(args, s["split"])
    n = job.clean.window_length
    front = features.frontend(clean=job.clean, features=job.features)
    Timing, _ = _callbacks()

    start = time.perf_counter()  # train.run's own work from here on: read, spectrograms, build, fit
    x_train = features.spectrograms(front, data.load_windows(args.clean, rows_train, n_samples=n))
    x_val = features.spectrograms(front, data.load_windows(args.clean, rows_val, n_samples=n))
    prepare_seconds = time.perf_counter() - start
    y_train = data.encode(rows_train["label"], labels)
    y_val = data.encode(rows_val["label"], labels)
    timing = Timing(label=f"project {name}", start=start, max_seconds=args.project_max_seconds,
                    batch_size=config.batch_size, per_epoch=len(x_train))
    fitted = train.fit(job, x_train, y_train, x_val, y_val, n_classes=len(labels), callbacks=[timing], replicas=replicas)
    back = fitted.back
    result = _summary(timing, level=args.level, n_train=len(x_train))
    result.update(n_val_windows=len(x_val), n_params=back.count_params(), peak_rss_mib=_peak_rss_mib(),
                  prepare_seconds=prepare_seconds, batch_size=config.batch_size, epochs_cap=config.epochs,
                  learning_rate=config.learning_rate, precision=config.precision,
                  max_seconds=args.project_max_seconds, samples_per_epoch=len(x_train))
    del x_train, x_val
    x_test = features.spectrograms(front, data.load_windows(args.clean, rows_test, n_samples=n))
    with filtered_stderr():
        probs = back.predict(x_test, batch_size=PREDICT_BATCH, verbose=0)
    result.update(_file_accuracy(rows_test, probs, labels))
    return result


# --------------------------------------------------------------------------- machine: arithmetic rate and FLOPs


def _matmul_gflops(tf, dtype) -> float:
    """Sustained GFLOP/s of an ``N x N`` matmul in ``dtype``, after a warm-up."""
    a = tf.cast(tf.random.stateless_normal((MATMUL_N, MATMUL_N), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_normal((MATMUL_N, MATMUL_N), seed=(3, 4)), dtype)
    product = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b)[:1, :1], tf.float32)))
    for _ in range(3):
        product(a, b).numpy()
    reps, start = 0, time.perf_counter()
    while reps < 5 or time.perf_counter() - start < MATMUL_SECONDS:
        product(a, b).numpy()
        reps += 1
    return reps * 2 * MATMUL_N**3 / (time.perf_counter() - start) / 1e9


def _conv_flops(kernel, c_in, filters, out_shape, bias) -> int:
    """2 per multiply-add (+1 per output for the bias) of a convolution with output ``out_shape`` (no batch)."""
    positions = int(np.prod(out_shape[:-1]))
    return positions * filters * (2 * int(np.prod(kernel)) * c_in + (1 if bias else 0))


def _dense_flops(layer, in_shape) -> int:
    lead = int(np.prod(in_shape[:-1])) if len(in_shape) > 1 else 1
    return lead * layer.units * (2 * in_shape[-1] + (1 if layer.use_bias else 0))


def _lstm_flops(layer, in_shape) -> int:
    """One direction: each step's four gates, ``[x, h] @ W + b`` (the cell's elementwise work not counted)."""
    steps, features = in_shape[-2], in_shape[-1]
    u = layer.units
    return steps * 4 * u * (2 * (features + u) + 1)


def _layer_flops(layer, in_shape, out_shape) -> int:
    from keras import layers

    if isinstance(layer, layers.TimeDistributed):
        return in_shape[0] * _layer_flops(layer.layer, in_shape[1:], out_shape[1:])
    if isinstance(layer, layers.Bidirectional):
        return _lstm_flops(layer.forward_layer, in_shape) + _lstm_flops(layer.backward_layer, in_shape)
    if isinstance(layer, layers.LSTM):
        return _lstm_flops(layer, in_shape)
    if isinstance(layer, (layers.Conv1D, layers.Conv2D)):
        return _conv_flops(layer.kernel_size, in_shape[-1] // layer.groups, layer.filters, out_shape, layer.use_bias)
    if isinstance(layer, layers.Dense):
        return _dense_flops(layer, in_shape)
    return 0


def analytic_flops(model) -> int:
    """Forward FLOPs per window of ``model``'s convolutions, dense layers and LSTM gates."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += analytic_flops(layer)
            continue
        try:
            inputs, outputs = layer.input, layer.output
        except (AttributeError, ValueError):  # an input layer, or one never called
            continue
        if isinstance(inputs, (list, tuple)) or isinstance(outputs, (list, tuple)):
            continue  # Concatenate and the like: no arithmetic counted
        total += _layer_flops(layer, tuple(inputs.shape[1:]), tuple(outputs.shape[1:]))
    return total


def profiler_flops(tf, model) -> int:
    """TensorFlow's profiler count of one window's forward pass (no LSTM loop bodies: it stops at while ops)."""
    from tensorflow.python.profiler.model_analyzer import profile
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return int(profile(graph=graph, options=options).total_float_ops)


def frontend_flops(clean, features, frames) -> int:
    """The log-mel front end per window: windowing, a real FFT (~2.5 N log2 N), power, the mel matmul, dB."""
    bins = features.n_fft // 2 + 1
    per_frame = (
        features.n_fft  # window multiply
        + 2.5 * features.n_fft * math.log2(features.n_fft)  # real FFT
        + 3 * bins  # |X|^2
        + 2 * bins * features.n_mels  # mel filter bank
        + 2 * features.n_mels  # log and scale
    )
    return int(frames * per_frame)


def run_machine(args, names) -> dict:
    """The matmul rate and, per model, each side's FLOPs per window."""
    from instrclf import backends, data, layout, train
    from instrclf.features import frontend
    from instrclf.runtime import filtered_stderr, tf

    s = _read_settings(args)
    train.set_threads(s["train"].threads)
    tf.get_logger().setLevel("ERROR")  # the profiler's TF1 deprecation notices
    n_classes = len(data.class_names(layout.read_index(args.clean)))
    out = {
        "matmul_n": MATMUL_N,
        "matmul_gflops_float32": _matmul_gflops(tf, tf.float32),
        "matmul_gflops_bfloat16": _matmul_gflops(tf, tf.bfloat16),
        "models": {},
    }
    _say(f"[machine] sustained matmul: {out['matmul_gflops_float32']:.1f} GFLOP/s float32, "
         f"{out['matmul_gflops_bfloat16']:.1f} GFLOP/s bfloat16")
    front = frontend(clean=s["clean"], features=s["features"])
    shape = front.output_shape[1:]
    with filtered_stderr():
        front_profiler = profiler_flops(tf, front)
    front_analytic = frontend_flops(s["clean"], s["features"], shape[0])
    for name in names:
        config = settings.model_config(s["params"], name)
        project = backends.build(name, config=config, input_shape=shape, n_classes=n_classes, fold=TEST_FOLD)
        classic = classic_backend(name, config=config, input_shape=shape, n_classes=n_classes)
        with filtered_stderr():
            counts = {
                "classic_forward": analytic_flops(classic),
                "classic_forward_profiler": profiler_flops(tf, classic),
                "project_forward": analytic_flops(project),
                "project_forward_profiler": profiler_flops(tf, project),
                "frontend_forward": front_analytic,
                "frontend_forward_profiler": front_profiler,
            }
        counts["classic_train"] = TRAIN_FACTOR * counts["classic_forward"] + front_analytic
        counts["project_train"] = TRAIN_FACTOR * counts["project_forward"]
        out["models"][name] = counts
        _say(f"[machine] {name}: forward MFLOP/window classic {counts['classic_forward'] / 1e6:.2f} "
             f"(profiler {counts['classic_forward_profiler'] / 1e6:.2f}), project {counts['project_forward'] / 1e6:.2f} "
             f"(profiler {counts['project_forward_profiler'] / 1e6:.2f}), front end {front_analytic / 1e6:.2f} "
             f"(profiler, no FFT: {front_profiler / 1e6:.2f})")
    return out


# --------------------------------------------------------------------------- the parent: subprocesses, table, JSON


def _worker(args, role, name=None) -> dict:
    """Run one role (``machine``, ``classic``, ``project``) in a fresh Python; its result dict, or its failure."""
    forwarded = [
        "--clean", str(args.clean), "--params", str(args.params), "--level", repr(args.level),
        "--epochs", str(args.epochs), "--max-seconds", repr(args.max_seconds),
        *(["--project-max-seconds", repr(args.project_max_seconds)] if args.project_max_seconds is not None else []),
        *(["--limit", str(args.limit)] if args.limit is not None else []),
        "--models", *args.models,
    ]
    with tempfile.TemporaryDirectory(prefix="train_speed.") as tmp:
        result_path = Path(tmp) / "result.json"
        command = [sys.executable, str(Path(__file__).resolve()), *forwarded, "--worker", role,
                   *(["--model", name] if name else []), "--result", str(result_path)]
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=sys.stderr, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if process.returncode != 0 or not result_path.is_file():
            return {"error": f"worker exited with status {process.returncode}", "process_seconds": wall}
        result = json.loads(result_path.read_text(encoding="utf-8"))
    result["process_seconds"] = wall
    result["process_peak_rss_mib"] = usage.ru_maxrss / 1024  # the whole run, test prediction included
    return result


def _fmt_seconds(side) -> str:
    if "error" in side:
        return "failed"
    if side["reached_level"]:
        return f"{side['seconds_to_level']:.1f} s (epoch {side['epoch_at_level']})"
    n = side["epochs_run"]
    stop = f"capped at {side['total_seconds']:.0f} s" if side["capped"] else f"{n} epoch{'' if n == 1 else 's'}, {side['total_seconds']:.0f} s"
    return f"not reached (best {side['best_val_accuracy']:.4f}; {stop})"


def _ratio(entry):
    classic, project = entry["classic"], entry["project"]
    if "error" in classic or "error" in project:
        return None, "n/a"
    if not project["reached_level"]:  # the project would need longer than it ran: an upper bound, if any
        if classic["reached_level"] and project["total_seconds"]:
            return None, f"< {classic['seconds_to_level'] / project['total_seconds']:.1f}x"
        return None, "n/a"
    if classic["reached_level"]:
        ratio = classic["seconds_to_level"] / project["seconds_to_level"]
        return ratio, f"{ratio:.1f}x"
    bound = classic["total_seconds"] / project["seconds_to_level"]
    return None, f"> {bound:.1f}x"


def _speed(result) -> float:
    """Training samples/s after the first epoch when there is one, else over every epoch."""
    return result.get("steady_samples_per_second") or result["samples_per_second"]


def _fill(entry, rate):
    """Add the ceiling and share to each side of one model's entry."""
    flops = entry.get("flops") or {}
    for side in SIDES:
        result = entry[side]
        train_flops = flops.get(f"{side}_train")
        if "error" in result or not train_flops or not rate or not result.get("samples_per_second"):
            continue
        measured = _speed(result)
        result["train_flops_per_window"] = train_flops
        result["ceiling_samples_per_second"] = rate * 1e9 / train_flops
        result["share_of_ceiling"] = measured / result["ceiling_samples_per_second"]
        result["share_of_ceiling_from"] = "steady" if result.get("steady_samples_per_second") else "all epochs"
        result["achieved_gflops"] = measured * train_flops / 1e9
    entry["ratio_seconds_to_level"], entry["ratio_text"] = _ratio(entry)


def table(report) -> str:
    level = report["level"]
    rate = report["machine"].get("matmul_gflops_float32")
    lines = [
        f"### Training speed: test fold {TEST_FOLD}, time to validation window accuracy >= {level:g}",
        "",
        f"{report['machine']['cpu']}, {report['machine']['cores']} cores"
        + (f", float32 matmul {rate:.1f} GFLOP/s" if rate else "")
        + f"; TensorFlow {report['versions']['tensorflow']}, Keras {report['versions']['keras']}",
        "",
        f"| model | side | samples/s | time to val acc >= {level:g} | classic / project | best val acc (epoch) "
        "| test file acc | peak RSS MiB | train MFLOP/window | ceiling samples/s | share of ceiling |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, entry in report["models"].items():
        for side in SIDES:
            r = entry[side]
            if "error" in r:
                lines.append(f"| {name} | {side} | failed: {r['error']} | | | | | | | | |")
                continue
            what = side if side == "classic" else f"project ({r['precision']}, batch {r['batch_size']})"
            flops = r.get("train_flops_per_window")
            arithmetic = (
                f"{flops / 1e6:.1f} | {r['ceiling_samples_per_second']:.0f} | {100 * r['share_of_ceiling']:.1f} % |"
                if flops
                else "n/a | n/a | n/a |"
            )
            lines.append(
                f"| {name} | {what} | {_speed(r):.0f}{'' if r.get('steady_samples_per_second') else '*'} | {_fmt_seconds(r)} | "
                f"{entry['ratio_text'] if side == 'classic' else ''} | "
                f"{r['best_val_accuracy']:.4f} ({r['best_epoch']}) | {r['test_file_accuracy']:.4f} | "
                f"{r['peak_rss_mib']:.0f} | {arithmetic}"
            )
    lines += [
        "",
        "samples/s: training windows per second of the epochs' training part (validation excluded), after the "
        "first epoch (graph tracing); * only one full epoch ran, so tracing is included. "
        "Time to level: wall time from the start (model built; for the project also windows read and "
        "spectrograms computed) to the end of the first epoch whose validation window accuracy reaches the level. "
        "Test file accuracy: best-validation weights, mean window probabilities per recording. "
        "Train FLOPs: 3x the back end's forward FLOPs (convolutions, dense layers, LSTM gates), plus the front end's "
        "forward FLOPs on the classic side (it runs on every step); ceiling = float32 matmul rate / train FLOPs.",
    ]
    return "\n".join(lines)


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="models to compare (default: all three)")
    parser.add_argument("--clean", type=Path, default=ROOT / "data" / "clean", help="clean windows + index.csv (default data/clean)")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="params file (default: the repo's)")
    parser.add_argument("--level", type=float, default=0.95, help="validation window accuracy to reach (default 0.95)")
    parser.add_argument("--epochs", type=int, default=30, help="classic side: epoch cap (default 30)")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="classic side: wall-clock cap per model in seconds, checked after each batch (default 600)")
    parser.add_argument("--project-max-seconds", type=float, default=None,
                        help="project side: the same cap (default none: the recipe runs every epoch, as train.run does)")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most this many windows per set (train, val, test), evenly spread: smoke runs only")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_speed.json",
                        help="JSON report, written atomically (default benchmarks/results/train_speed.json)")
    parser.add_argument("--worker", choices=("machine", *SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 < args.level <= 1:
        parser.error("--level must lie in (0, 1]")
    if args.epochs < 1 or args.max_seconds <= 0 or (args.project_max_seconds is not None and args.project_max_seconds <= 0):
        parser.error("--epochs, --max-seconds and --project-max-seconds must be positive")
    if args.limit is not None and args.limit < CLASSIC_BATCH:
        parser.error(f"--limit must be at least the classic batch ({CLASSIC_BATCH})")
    args.models = list(dict.fromkeys(args.models))
    return args


def main(argv=None):
    args = parse(argv)
    if args.worker:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        if args.worker == "machine":
            result = run_machine(args, args.models)
        else:
            result = (run_classic if args.worker == "classic" else run_project)(args, args.model)
        write_json(args.result, result)
        return

    params = settings.load(args.params)  # fail early on a bad params file, before any subprocess
    split = settings.section(params, SplitSettings)
    settings.section(params, TrainSettings)
    val_fold, train_folds = SplitSettings.folds_of(TEST_FOLD)
    load = os.getloadavg()[0]
    started = datetime.now(timezone.utc)

    _note(f"train_speed: models {', '.join(args.models)}; {args.clean}; level {args.level:g}; load average {load:.2f}")
    machine = _worker(args, "machine")
    if "error" in machine:
        _note(f"train_speed: the machine measurement failed ({machine['error']}); continuing without FLOP figures")
    report = {
        "benchmark": "train_speed",
        "command": shlex.join([sys.executable, *sys.argv]),
        "started": started.isoformat(timespec="seconds"),
        "level": args.level,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "load_average_at_start": load,
            "matmul_n": MATMUL_N,
            "matmul_gflops_float32": machine.get("matmul_gflops_float32"),
            "matmul_gflops_bfloat16": machine.get("matmul_gflops_bfloat16"),
        },
        "versions": {p: version(p) for p in ("tensorflow", "keras", "kapre", "numpy")} | {"python": platform.python_version()},
        "data": {
            "clean": str(args.clean),
            "params": str(args.params),
            "test_fold": TEST_FOLD,
            "val_fold": val_fold,
            "train_folds": list(train_folds),
            "unseen_library_excluded": split.unseen_library,
            "limit_per_set": args.limit,
        },
        "classic_recipe": {
            "batch_size": CLASSIC_BATCH,
            "learning_rate": CLASSIC_RATE,
            "epochs_cap": args.epochs,
            "max_seconds": args.max_seconds,
        },
        "project_max_seconds": args.project_max_seconds,
        "flop_counting": (
            "analytic: 2 per multiply-add (+bias) of Conv1D/Conv2D/Dense/LSTM gates, elementwise work not counted; "
            "training = 3x forward, plus the front end's forward pass on the classic side; *_profiler: TensorFlow's "
            "profiler on one window's forward graph (misses the LSTM while-loop bodies and the FFT)"
        ),
        "models": {},
    }
    for name in args.models:
        entry = {"flops": (machine.get("models") or {}).get(name)}
        for side in SIDES:
            _note(f"train_speed: {name}, {side} side")
            entry[side] = _worker(args, side, name)
        _fill(entry, machine.get("matmul_gflops_float32"))
        report["models"][name] = entry
        write_json(args.out, report)  # partial results survive a later failure
    report["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(args.out, report)
    print(table(report))
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
