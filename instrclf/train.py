"""Training: seeding, threads, the distribution strategy, cached spectrograms and the fit loop.

The kapre front end has no trainable weights, so each window's spectrogram is computed
once (:func:`spectrograms`) and only the back end is trained, on batches from memory.
The trained back end is then assembled with the front end into one model that takes raw
audio (:func:`instrclf.models.assemble`).
"""

import os
import random
import sys
import time

import numpy as np

from . import data, layout, models
from .runtime import filtered_stderr, tf

import keras  # noqa: E402  (after runtime: TensorFlow imported quietly)
from .errors import ParameterError
from .settings import CleanSettings, FeatureSettings, ModelConfig, SplitSettings, TrainSettings

#: Inference batch for the front end: memory only, never results.
FRONTEND_BATCH = 256


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, Keras and TensorFlow, and make TensorFlow's ops deterministic."""
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def set_threads(threads) -> None:
    """Limit TensorFlow's intra-op threads (``train.threads``; ``None`` keeps every core).

    Must run before TensorFlow executes its first op. Inter-op parallelism is set to 1
    thread when limited, so N queued jobs with ``threads = cores / N`` use the cores once.
    """
    if threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy named by ``train.distribute``.

    ``default`` is the one-device strategy (a visible GPU is used automatically);
    ``mirrored`` replicates over every local GPU (or the CPU's logical devices);
    ``multi_worker`` reads the cluster from ``TF_CONFIG``.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def spectrograms(front: keras.Model, x: np.ndarray) -> np.ndarray:
    """The front end's output for every window, computed once: ``(n, frames, n_mels, 1)`` float32."""
    if len(x) == 0:
        return np.zeros((0, *front.output_shape[1:]), dtype=np.float32)
    with filtered_stderr():
        return front.predict(x, batch_size=FRONTEND_BATCH, verbose=0).astype(np.float32, copy=False)


def dataset(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed=None) -> tf.data.Dataset:
    """Batches of ``(x, y)`` from memory; shuffled each epoch with ``seed`` when one is given."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)


def learning_rate(config: ModelConfig, train: TrainSettings, *, steps_per_epoch: int):
    """Linear warm-up to ``config.learning_rate`` over ``train.warmup_epochs``, then cosine decay to 0 at ``config.epochs``."""
    if train.warmup_epochs >= config.epochs:
        raise ParameterError(
            f"train.warmup_epochs ({train.warmup_epochs}) must be < {config.KEY}.epochs ({config.epochs})"
        )
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(total - 1, round(train.warmup_epochs * steps_per_epoch))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 10 if warmup else config.learning_rate,
        decay_steps=total - warmup,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def compile_model(model: keras.Model, *, rate) -> keras.Model:
    """Adam + sparse categorical cross-entropy, reporting accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def fit(model, train_ds, val_ds, *, epochs: int, patience: int, live=None) -> dict:
    """Train with early stopping on validation accuracy, restoring the best epoch's weights.

    Parameters
    ----------
    model : keras.Model
        A compiled model.
    train_ds, val_ds : tf.data.Dataset
        Batched training and validation data.
    epochs : int
        The schedule's length.
    patience : int
        Epochs without a better validation accuracy before stopping; 0 never stops
        early (the best epoch is restored either way).
    live : dvclive.Live, optional
        Where per-epoch curves are logged (through dvclive's Keras callback).

    Returns
    -------
    dict
        ``history`` (per-epoch logs), ``epochs_run``, ``best_epoch`` (1-based),
        ``best_val_accuracy``, ``train_seconds``.
    """
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_accuracy",
            mode="max",
            patience=patience or epochs,
            restore_best_weights=True,
        )
    ]
    if live is not None:
        from dvclive.keras import DVCLiveCallback

        callbacks.append(DVCLiveCallback(live=live))
    start = time.perf_counter()
    with filtered_stderr():
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() and not os.environ.get("CI") else 2,
        ).history
    seconds = time.perf_counter() - start
    val_acc = history["val_accuracy"]
    best = int(np.argmax(val_acc))
    return {
        "history": history,
        "epochs_run": len(val_acc),
        "best_epoch": best + 1,
        "best_val_accuracy": float(val_acc[best]),
        "train_seconds": seconds,
    }


def run(
    name: str,
    *,
    test_fold: int,
    clean_dir,
    clean: CleanSettings,
    features: FeatureSettings,
    split: SplitSettings,
    train: TrainSettings,
    config: ModelConfig,
    seed: int,
    target: str,
    live_dir=None,
) -> tuple:
    """Train model ``name`` for one test fold on the clean windows.

    Trains on the three folds other than ``test_fold`` and its validation fold
    ``(test_fold + 1) % 5``, early-stops on the validation fold, and never sees the
    unseen library (``split.unseen_library``).

    Returns
    -------
    model : keras.Model
        Front end + trained back end (best weights restored); takes raw audio.
    card : instrclf.models.ModelCard
        What :func:`instrclf.models.save` stores beside the model.
    metrics : dict
        Flat numbers for the training metrics file.
    """
    set_threads(train.threads)
    seed_everything(seed)
    index = layout.read_index(clean_dir)
    labels = data.labels_of(index)
    sets = data.fold_sets(index, test_fold=test_fold, unseen_library=split.unseen_library)
    n_samples = clean.window_length
    front = models.frontend(clean=clean, features=features)
    start = time.perf_counter()
    x_train = spectrograms(front, data.load_windows(clean_dir, sets.train, n_samples=n_samples))
    x_val = spectrograms(front, data.load_windows(clean_dir, sets.val, n_samples=n_samples))
    prepare_seconds = time.perf_counter() - start
    y_train = data.encode(sets.train["label"], labels)
    y_val = data.encode(sets.val["label"], labels)

    train_ds = dataset(x_train, y_train, batch_size=config.batch_size, seed=seed)
    val_ds = dataset(x_val, y_val, batch_size=config.batch_size)
    steps = int(np.ceil(len(x_train) / config.batch_size))
    with strategy(train.distribute).scope():
        back = models.backend(name, config=config, input_shape=x_train.shape[1:], n_classes=len(labels), fold=test_fold)
        compile_model(back, rate=learning_rate(config, train, steps_per_epoch=steps))
    schedule = {"epochs": config.epochs, "patience": train.patience}
    if live_dir is None:
        result = fit(back, train_ds, val_ds, **schedule)
    else:
        from dvclive import Live

        # A stage's outputs are DVC's business: no dvc.yaml of dvclive's own, no experiment of its own.
        with Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None) as live:
            result = fit(back, train_ds, val_ds, **schedule, live=live)

    model = models.assemble(front, [back], name=name)
    card = models.ModelCard(
        format=models.CARD_FORMAT,
        model=name,
        labels=labels,
        target=target,
        clean=clean,
        features=features,
        config=config.model_dump(),
        test_folds=[test_fold],
        unseen_library=None if sets.unseen_note else split.unseen_library,
        seed=seed,
    )
    metrics = {
        "best_val_accuracy": result["best_val_accuracy"],
        "best_epoch": result["best_epoch"],
        "epochs_run": result["epochs_run"],
        "train_seconds": round(result["train_seconds"], 2),
        "spectrogram_seconds": round(prepare_seconds, 2),
        "samples_per_second": round(len(x_train) * result["epochs_run"] / result["train_seconds"], 1),
        "n_train_windows": len(x_train),
        "n_val_windows": len(x_val),
        "n_params": back.count_params(),
    }
    return model, card, metrics
