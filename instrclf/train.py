"""Training: seeding, the distribution strategy, datasets and the fit loop with early stopping."""

import dataclasses
import os
import random
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from . import data, models
from . import params as P
from .audio import CleanConfig

STRATEGIES = ("default", "mirrored", "multi_worker")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (params ``train.*``)."""

    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    distribute: str = "default"

    @classmethod
    def from_params(cls, params: dict) -> "TrainConfig":
        """Read and check ``train.*``; errors name the key and the allowed values."""
        return cls(
            epochs=P.number("train.epochs", P.get(params, "train.epochs"), low=1, integer=True),
            batch_size=P.number("train.batch_size", P.get(params, "train.batch_size"), low=1, integer=True),
            learning_rate=P.number("train.learning_rate", P.get(params, "train.learning_rate"), low=0, low_open=True),
            patience=P.number("train.patience", P.get(params, "train.patience"), low=0, integer=True),
            distribute=P.choice("train.distribute", P.get(params, "train.distribute", "default"), STRATEGIES),
        )


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, Keras and TensorFlow, and make TensorFlow's ops deterministic."""
    P.number("seed", seed, low=0, integer=True)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy named by ``train.distribute``.

    ``default`` is the one-device strategy; ``mirrored`` replicates over every local GPU
    (or the CPU when there is none); ``multi_worker`` reads the cluster from ``TF_CONFIG``.
    """
    P.choice("train.distribute", name, STRATEGIES)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def dataset(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int | None = None) -> tf.data.Dataset:
    """Batches of ``(x, y)``; shuffled each epoch with ``seed`` when one is given."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)


def compile_model(model: keras.Model, *, learning_rate: float) -> keras.Model:
    """Adam + sparse categorical cross-entropy, reporting accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def fit(model, train_ds, val_ds, *, config: TrainConfig, live=None) -> dict:
    """Train with early stopping on validation accuracy, restoring the best weights.

    Parameters
    ----------
    model : keras.Model
        A compiled model.
    train_ds, val_ds : tf.data.Dataset
        Batched training and validation data.
    config : TrainConfig
        Epochs, patience.
    live : dvclive.Live, optional
        Where per-epoch curves are logged (through dvclive's Keras callback).

    Returns
    -------
    dict
        ``history`` (per-epoch logs), ``epochs_run``, ``best_epoch`` (1-based), ``best_val_accuracy``,
        ``train_seconds``.
    """
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=config.patience, restore_best_weights=True, verbose=1
        )
    ]
    if live is not None:
        from dvclive.keras import DVCLiveCallback

        callbacks.append(DVCLiveCallback(live=live))
    start = time.perf_counter()
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
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


def run(params: dict, *, name: str, clean_dir, live_dir=None) -> tuple:
    """Train model ``name`` on the clean windows, as params.yaml says.

    Every parameter is checked before any data is read. Trains on the folds other than
    ``split.test_fold`` and ``split.val_fold`` and early-stops on ``split.val_fold``.

    Parameters
    ----------
    params : dict
        The whole params.yaml.
    name : str
        A model of :data:`instrclf.models.REGISTRY`.
    clean_dir : str or Path
        The clean stage's output (``index.csv`` and the windows).
    live_dir : str or Path, optional
        dvclive folder for the per-epoch curves; ``None`` logs nothing.

    Returns
    -------
    model : keras.Model
        Trained, best weights restored.
    meta : dict
        What :func:`instrclf.models.save` stores beside the model.
    metrics : dict
        Flat numbers for ``metrics/train/<name>.json``.
    """
    P.choice("train.models", name, models.REGISTRY)
    config = TrainConfig.from_params(params)
    split = data.Split.from_params(params)
    features = models.Features.from_params(params)
    knobs = models.model_config(params, name)
    clean = CleanConfig.from_params(params)
    seed = P.get(params, "seed")
    seed_everything(seed)

    index = data.read_index(clean_dir)
    labels = data.labels_of(index)
    n_samples = clean.window_length
    train_idx = data.select_folds(index, split.train_folds)
    val_idx = data.select_folds(index, [split.val_fold])
    x_train = data.load_windows(clean_dir, train_idx, n_samples=n_samples)
    x_val = data.load_windows(clean_dir, val_idx, n_samples=n_samples)
    y_train = data.encode(train_idx["label"], labels)
    y_val = data.encode(val_idx["label"], labels)

    with strategy(config.distribute).scope():
        model = models.build(name, n_classes=len(labels), n_samples=n_samples, features=features, config=knobs)
        compile_model(model, learning_rate=config.learning_rate)
    train_ds = dataset(x_train, y_train, batch_size=config.batch_size, seed=seed)
    val_ds = dataset(x_val, y_val, batch_size=config.batch_size)

    if live_dir is None:
        result = fit(model, train_ds, val_ds, config=config)
    else:
        from dvclive import Live

        # A stage's outputs are DVC's business: no dvc.yaml of dvclive's own, no experiment of its own.
        with Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None) as live:
            result = fit(model, train_ds, val_ds, config=config, live=live)

    meta = {
        "model": name,
        "labels": labels,
        "target": P.get(params, "data.target", None),
        "clean": dataclasses.asdict(clean),
        "features": models.features_dict(features),
        "config": knobs,
        "split": {"test_fold": split.test_fold, "val_fold": split.val_fold, "train_folds": list(split.train_folds)},
        "seed": seed,
    }
    metrics = {
        "best_val_accuracy": result["best_val_accuracy"],
        "best_epoch": result["best_epoch"],
        "epochs_run": result["epochs_run"],
        "train_seconds": round(result["train_seconds"], 2),
        "samples_per_second": round(len(x_train) * result["epochs_run"] / result["train_seconds"], 1),
        "n_train_windows": len(x_train),
        "n_val_windows": len(x_val),
        "n_params": model.count_params(),
    }
    return model, meta, metrics
