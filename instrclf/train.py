"""Training: seeding, threads, the distribution strategy, cached spectrograms and the fit loop.

The kapre front end has no trainable weights, so each window's spectrogram is computed
once, by the ``features`` stage (:mod:`instrclf.features`), and only the back end is
trained, on batches read from that file as they are needed (a seeded order of row
indices, batched, each batch's rows gathered): memory does not grow with the data.
The trained back end is then assembled with the front end into one model that takes raw
audio (:func:`instrclf.models.assemble`).

``train.distribute`` trains the back end on replicas (:func:`strategy`, which states the
rule: the batch size is the global batch, the learning rate is not rescaled, and what
stays bit-for-bit reproducible); under ``multi_worker`` every worker runs the same stage
and only the chief writes (:func:`is_chief`).
"""

import contextlib
import json
import os
import random
import resource
import sys
import time

from dataclasses import dataclass

import numpy as np

from . import augment as augmentation
from . import backends, colour, data, models
from .card import CARD_FORMAT, ModelCard
from .features import Features, frontend
from .runtime import filtered_stderr, tf

import keras  # noqa: E402  (after runtime: TensorFlow imported quietly)
from .errors import ParameterError
from .settings import INFERENCE_BATCH  # windows per model call: memory and speed only, never results
from .settings import ModelConfig, TrainingJob

#: The figures of :func:`run` that measure the machine, not the model: they differ from run to
#: run, so the stage writes them apart (``results/timings/``, not cached) from the figures that
#: a rerun reproduces byte for byte.
TIMING_KEYS = ("train_seconds", "read_seconds", "samples_per_second", "peak_memory_mb")


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
    ``mirrored`` replicates over every local GPU, or, with none, over the CPU's logical
    devices when it has been split into several (one replica otherwise);
    ``multi_worker`` reads the cluster from ``TF_CONFIG`` (one process per worker, each
    running the same stage; see :func:`is_chief`). A multi-worker strategy must be made
    before TensorFlow runs its first op, which is why :func:`run` makes it first.

    Batch size and learning rate under replicas: ``models.<name>.batch_size`` is the
    global batch, split evenly across the ``num_replicas_in_sync`` replicas (32 over 4
    replicas: 8 each; the epoch's last, short batch is split too). Keras scales each
    replica's loss by ``1 / replicas`` and sums the gradients across replicas, so a step
    follows the gradient of the global batch's mean loss. The learning rate is not
    rescaled with the number of replicas: with the same global batch, N replicas take the
    same steps on the same schedule as one device (:func:`learning_rate` counts steps of
    the global batch). For more data per step, raise the batch size: the steps per epoch
    fall and the schedule follows them; the peak rate stays as configured.

    Determinism, with :func:`seed_everything`'s op determinism on: ``default`` and
    ``mirrored`` on one machine repeat bit for bit from the seed. They are not bitwise
    equal to each other: the replicas' partial sums add up in another order, and Keras
    draws the seeded shuffle order differently under a strategy. ``multi_worker`` is not
    covered: op determinism makes each op repeatable within its process; it promises
    nothing about the order in which the collective all-reduce adds the workers'
    gradients, nor about the ring's timing across processes. Measured (TF 2.20, Keras
    3.13, 2 CPU workers on one machine, tests/test_distribute.py's cluster; baseline and
    conv1d with dropout, up to 24 steps, 1 or all threads, 10 runs): both workers ended
    with identical weights and every rerun was bit-identical, as expected when each
    all-reduced value is a single sum of two terms. Not measured: more workers, several
    machines, GPUs (NCCL); there compare runs with a tolerance, not bit for bit.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(distribute: str) -> bool:
    """Whether this process writes the outputs (model, card, metrics, dvclive curves).

    Only ``multi_worker`` runs one process per worker, every one training the same
    mirrored weights; its chief alone writes, so the workers never race on the same
    paths. The chief is the ``TF_CONFIG`` task of type ``chief``, or worker 0 when the
    cluster has no chief; without ``TF_CONFIG`` the one process is the chief. Under
    ``default`` and ``mirrored`` the single process is always the chief.
    """
    if distribute != "multi_worker":
        return True
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    kind = task.get("type")
    if not kind or kind == "chief":
        return True
    return kind == "worker" and int(task.get("index", 0)) == 0 and not (config.get("cluster") or {}).get("chief")


def across_processes(replicas: tf.distribute.Strategy) -> bool:
    """Whether ``replicas`` has replicas in other processes (``multi_worker`` with 2+ workers)."""
    return isinstance(replicas, tf.distribute.MultiWorkerMirroredStrategy) and (
        replicas.num_replicas_in_sync > len(replicas.extended.worker_devices)
    )


def fit_across_processes(model: keras.Model, replicas: tf.distribute.Strategy):
    """Let Keras 3 ``fit`` train ``model`` across workers; the context to call it in.

    Keras 3.13's TensorFlow trainer fails under a multi-worker
    ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585, tensorflow/tensorflow#72388):
    before the first step it reduces the first ``(x, y)`` batch across workers with
    ``Strategy.reduce``, which takes one tensor, not a tuple; and it averages each
    step's scalar logs across workers along ``axis=0``, which a scalar lacks. So, for a
    model built and compiled under ``replicas``: its own strategy is cleared (Keras then
    skips that first reduction, builds on tracing, and takes the strategy from the scope
    ``fit`` runs in: the returned context), and each step's logs get a length-1 axis,
    which the average removes again. Gradients, weights and metric states are untouched.
    Under any other strategy nothing changes and the context does nothing.
    """
    if not across_processes(replicas):
        return contextlib.nullcontext()
    model._distribute_strategy = None
    for name in ("train_step", "test_step"):

        def step_with_log_axis(data, step=getattr(model, name)):
            return {key: tf.reshape(value, [1]) for key, value in step(data).items()}

        setattr(model, name, step_with_log_axis)
    return replicas.scope()


def _source(x):
    """``(read, n, row_shape)`` of training inputs: an array in memory, or rows read from a file as
    needed (:meth:`instrclf.features.Features.select`: anything with ``read(indices)`` and ``shape``)."""
    if isinstance(x, np.ndarray):
        return (lambda i: x[i]), len(x), tuple(x.shape[1:])
    return x.read, x.shape[0], tuple(x.shape[1:])


def _part(indices, k: int, parts: int):
    """Part ``k`` of ``parts`` near-equal consecutive parts of a batch of indices (the first ones one longer)."""
    n = tf.shape(indices, out_type=tf.int64)[0]
    size, extra = n // parts, n % parts
    start = k * size + tf.minimum(tf.cast(k, tf.int64), extra)
    return indices[start : start + size + tf.cast(k < extra, tf.int64)]


def dataset(x, y: np.ndarray, *, batch_size: int, seed=None, augment=None, draws=None, part=None) -> tf.data.Dataset:
    """Batches of ``(x, y)``: a seeded order of row indices, batched, then each batch's rows gathered.

    ``x`` is an array in memory or rows of the features file (:meth:`instrclf.features.Features.select`),
    read batch by batch: the training set is never copied into memory whole. With a ``seed``
    the order is reshuffled each epoch (the shuffle of indices draws the same order as a
    shuffle of the rows themselves); with ``augment`` (an
    :class:`~instrclf.settings.AugmentSettings` with a transform on, training data only)
    each batch is transformed with a stateless seed drawn from ``seed``, so the augmented
    batches are the same on every run. With ``draws`` (training only, from
    :func:`instrclf.data.draws_of`; needs a ``seed``) an epoch draws window ``i``
    ``draws[i]`` times (:func:`weighted_order`); ``None`` is the plain shuffle.

    With ``part = (k, parts)`` (multi-worker training, :func:`distributed`) the dataset yields
    part ``k`` of every batch only: every process draws the same order of indices (a few bytes
    a window) and reads only its own rows.
    """
    read, n, row_shape = _source(x)
    if draws is None:
        order = tf.data.Dataset.range(n)
        if seed is not None:
            order = order.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    else:
        if seed is None:
            raise ValueError("library weights need a seed")
        order = weighted_order(draws, seed=seed)
    ds = order.batch(batch_size)
    active = augment is not None and augmentation.active(augment)
    if active:
        if seed is None:
            raise ValueError("augmentation needs a seed")
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds))
    else:
        ds = ds.map(lambda i: (i, tf.zeros([2], tf.int64)))
    if part is not None:
        k, parts = part
        ds = ds.map(lambda i, s: (_part(i, k, parts), s + tf.constant([0, k], tf.int64)))
    y_all = tf.constant(y)

    def gather(i, s):
        rows = tf.numpy_function(lambda j: np.asarray(read(j), dtype=np.float32), [i], tf.float32, stateful=False)
        return tf.ensure_shape(rows, (None, *row_shape)), tf.gather(y_all, i), s

    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if active:
        apply = augmentation.batch_augmenter(augment)
        ds = ds.map(lambda bx, by, s: apply(bx, by, s), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(lambda bx, by, s: (bx, by))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF if part is not None else tf.data.experimental.AutoShardPolicy.DATA
    )
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def distributed(replicas: tf.distribute.Strategy, make):
    """The dataset ``make(part=...)`` for ``fit`` under ``replicas``: as is in one process; across
    processes (:func:`across_processes`) each replica's input pipeline reads its own part of every
    global batch (the parts add up to the batch), never the other workers' rows."""
    if not across_processes(replicas):
        return make(part=None)

    def per_pipeline(context):
        local = replicas.num_replicas_in_sync // context.num_input_pipelines
        parts = [make(part=(context.input_pipeline_id * local + r, replicas.num_replicas_in_sync)) for r in range(local)]
        if local == 1:
            return parts[0]
        return tf.data.Dataset.choose_from_datasets(parts, tf.data.Dataset.range(local).repeat())

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return replicas.distribute_datasets_from_function(per_pipeline, options=options)


def _weight_groups(draws: np.ndarray):
    """``(k, members, whole, extra)`` per distinct weight, in increasing order (see :func:`weighted_order`)."""
    draws = np.asarray(draws, dtype=np.float64)
    for k, weight in enumerate(sorted(set(draws.tolist()))):
        members = np.flatnonzero(draws == weight).astype(np.int64)
        whole = int(np.floor(weight))
        yield k, members, whole, int(round((weight - whole) * len(members)))


def draws_per_epoch(draws, n_windows: int) -> int:
    """Windows drawn per epoch: ``n_windows`` unweighted, else the size of :func:`weighted_order`."""
    if draws is None:
        return n_windows
    size = sum(whole * len(members) + extra for _, members, whole, extra in _weight_groups(draws))
    if not size:
        raise ParameterError("train.library_weights leave no training window to draw")
    return size


def weighted_order(draws: np.ndarray, *, seed: int) -> tf.data.Dataset:
    """One epoch's window indices when window ``i`` is drawn ``draws[i]`` times, reshuffled each epoch (seeded).

    Windows that share a weight ``w`` (a library's) form a group of ``n`` windows: each is
    drawn ``floor(w)`` times, and a seeded subset of ``round(frac(w) * n)`` of them, drawn
    anew each epoch, once more. So a group's share of every epoch is fixed, ``w * n`` draws
    up to rounding (:func:`draws_per_epoch`), and only its fractional part varies in membership.
    """
    size = draws_per_epoch(draws, len(draws))
    parts = []
    for k, members, whole, extra in _weight_groups(draws):
        if whole:
            parts.append(tf.data.Dataset.from_tensor_slices(np.tile(members, whole)))
        if extra:
            pick = tf.data.Dataset.from_tensor_slices(members).shuffle(len(members), seed=seed + 1 + k, reshuffle_each_iteration=True)
            parts.append(pick.take(extra))
    order = parts[0]
    for part in parts[1:]:
        order = order.concatenate(part)
    return order.shuffle(size, seed=seed, reshuffle_each_iteration=True)


def learning_rate(config: ModelConfig, *, warmup_epochs: float, steps_per_epoch: int):
    """Linear warm-up to ``config.learning_rate`` over ``warmup_epochs``, then cosine decay to 0 at ``config.epochs``.

    ``steps_per_epoch`` counts global batches, whatever the number of replicas (:func:`strategy`).
    """
    if warmup_epochs >= config.epochs:
        raise ParameterError(f"train.warmup_epochs ({warmup_epochs}) must be < {config.KEY}.epochs ({config.epochs})")
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(total - 1, round(warmup_epochs * steps_per_epoch))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 10 if warmup else config.learning_rate,
        decay_steps=total - warmup,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def compile_model(model: keras.Model, *, rate) -> keras.Model:
    """Adam + sparse categorical cross-entropy, reporting accuracy.

    Not compiled by XLA: Keras refuses XLA while op determinism is on (it warns and trains
    without), and on CPU oneDNN's convolutions beat XLA's (0.3-0.5x the samples/s measured).
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    return model


def card(job: TrainingJob, labels: list, *, unseen_library, colour_reference=None) -> ModelCard:
    """The card saved beside ``job``'s model (``unseen_library``: the library actually held out, or None;
    ``colour_reference``: the colouring every library was brought to, with ``job.library_colour`` on)."""
    if (job.library_colour is None) != (colour_reference is None):
        raise ValueError("train.library_colour and the colour reference come together")
    return ModelCard(
        format=CARD_FORMAT,
        model=job.model,
        labels=list(labels),
        target=job.target,
        clean=job.clean,
        features=job.features,
        config=job.config.model_dump(),
        test_folds=[job.fold],
        unseen_library=unseen_library,
        seed=job.seed,
        colour_degree=job.library_colour,
        colour_reference=None if colour_reference is None else [round(float(v), 6) for v in colour_reference],
    )


@dataclass(frozen=True)
class Fitted:
    """A trained back end and how its training went.

    Attributes
    ----------
    back : keras.Model
        The back end with the best validation epoch's weights restored.
    history : dict
        Keras's per-epoch logs.
    epochs_run, best_epoch : int
        Epochs trained, and the restored one (1-based).
    best_val_accuracy : float
    train_seconds : float
        Wall time of ``model.fit``.
    draws_per_epoch : int
        Training windows drawn per epoch (more than the windows under library weights).
    """

    back: keras.Model
    history: dict
    epochs_run: int
    best_epoch: int
    best_val_accuracy: float
    train_seconds: float
    draws_per_epoch: int

    @property
    def samples_per_second(self) -> float:
        return self.draws_per_epoch * self.epochs_run / self.train_seconds


def datasets(job: TrainingJob, x_train, y_train, x_val, y_val, *, draws=None, replicas=None) -> tuple:
    """``(training, validation)`` batches of a job: training shuffled by ``job.seed``, weighted by
    ``draws`` and augmented by ``job.augment``; validation in order, every window once, untouched.
    Under a multi-worker ``replicas`` each worker reads its own part of every batch (:func:`distributed`)."""
    replicas = replicas or tf.distribute.get_strategy()
    size = job.config.batch_size

    def train_part(part):
        return dataset(x_train, y_train, batch_size=size, seed=job.seed, augment=job.augment, draws=draws, part=part)

    def val_part(part):
        return dataset(x_val, y_val, batch_size=INFERENCE_BATCH, part=part)

    return distributed(replicas, train_part), distributed(replicas, val_part)


def fit(job: TrainingJob, x_train, y_train, x_val, y_val, *, n_classes: int, draws=None, callbacks=(), live=None, replicas=None) -> Fitted:
    """The one training routine: seed, batches, back end, schedule, compile, fit with early stopping.

    Every caller (the stage through :func:`run`, the benchmarks, the tests) trains through
    here and adds what it needs through ``callbacks`` (timing, a wall-time cap).

    Parameters
    ----------
    job : instrclf.settings.TrainingJob
        Model, recipe and training settings.
    x_train, y_train, x_val, y_val
        Spectrograms (arrays in memory, or rows of the features file read batch by batch:
        :meth:`instrclf.features.Features.select`) and class ids (numpy arrays).
    n_classes : int
        Classes of the softmax.
    draws : numpy.ndarray, optional
        Draws per training window per epoch (:func:`instrclf.data.draws_of`); ``None`` unweighted.
    callbacks : sequence of keras.callbacks.Callback
        Added after early stopping (which restores the best validation epoch's weights;
        ``train.patience`` 0 never stops early).
    live : dvclive.Live, optional
        Where per-epoch curves are logged (dvclive's Keras callback).
    replicas : tf.distribute.Strategy, optional
        Made by :func:`strategy` before TensorFlow's first op; the default strategy if ``None``.
    """
    replicas = replicas or tf.distribute.get_strategy()
    seed_everything(job.seed)
    config = job.config
    train_ds, val_ds = datasets(job, x_train, y_train, x_val, y_val, draws=draws, replicas=replicas)
    per_epoch = draws_per_epoch(draws, len(x_train))
    steps = int(np.ceil(per_epoch / config.batch_size))
    with replicas.scope():
        back = backends.build(job.model, config=config, input_shape=x_train.shape[1:], n_classes=n_classes, fold=job.fold)
        compile_model(back, rate=learning_rate(config, warmup_epochs=job.warmup_epochs, steps_per_epoch=steps))
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=job.patience or config.epochs, restore_best_weights=True
    )
    every = [stopping, *callbacks]
    if live is not None:
        from dvclive.keras import DVCLiveCallback

        every.append(DVCLiveCallback(live=live))
    start = time.perf_counter()
    with fit_across_processes(back, replicas), filtered_stderr():
        history = back.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.epochs,
            callbacks=every,
            verbose=1 if sys.stdout.isatty() and not os.environ.get("CI") else 2,
        ).history
    seconds = time.perf_counter() - start
    val_acc = history["val_accuracy"]
    best = int(np.argmax(val_acc))
    return Fitted(
        back=back,
        history=history,
        epochs_run=len(val_acc),
        best_epoch=best + 1,
        best_val_accuracy=float(val_acc[best]),
        train_seconds=seconds,
        draws_per_epoch=per_epoch,
    )


def run(job: TrainingJob, *, features_dir, live_dir=None) -> tuple:
    """Train ``job`` on the windows' spectrograms (``features_dir``): the ``train@`` stage's work.

    Trains on the three folds other than ``job.fold`` and its validation fold
    ``(fold + 1) % 5``, early-stops on the validation fold, and never sees the unseen
    library (``split.unseen_library``).

    Returns
    -------
    model : keras.Model
        Front end + trained back end (best weights restored); takes raw audio.
    card : instrclf.card.ModelCard
        What :func:`instrclf.models.save` stores beside the model.
    metrics : dict
        Flat numbers: the training figures, then the timings (:data:`TIMING_KEYS`).
    """
    set_threads(job.threads)
    replicas = strategy(job.distribute)  # before any TensorFlow op: multi_worker configures the runtime
    start = time.perf_counter()
    cache = Features(features_dir, clean=job.clean, features=job.features)
    labels = data.class_names(cache.index)
    sets = data.fold_sets(cache.index, test_fold=job.fold, unseen_library=job.unseen_library)
    shifts, target = colour_shifts(cache, degree=job.library_colour, unseen_library=job.unseen_library)
    # read batch by batch, never copied whole; each library brought to the training libraries' colouring
    x_train, x_val = cache.select(sets.train, shifts=shifts), cache.select(sets.val, shifts=shifts)
    read_seconds = time.perf_counter() - start
    y_train = data.encode(sets.train["label"], labels)
    y_val = data.encode(sets.val["label"], labels)
    held_out = None if sets.unseen_note else job.unseen_library
    draws = data.draws_of(sets.train, job.library_weights, libraries=cache.index["library"], unseen_library=held_out)
    fitting = dict(n_classes=len(labels), draws=draws, replicas=replicas)
    if live_dir is None or not is_chief(job.distribute):  # one worker logs the curves
        result = fit(job, x_train, y_train, x_val, y_val, **fitting)
    else:
        from dvclive import Live

        # A stage's outputs are DVC's business: no dvc.yaml of dvclive's own, no experiment of its own.
        with Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None) as live:
            result = fit(job, x_train, y_train, x_val, y_val, **fitting, live=live)

    model = models.assemble(frontend(clean=job.clean, features=job.features), [result.back], name=job.model)
    metrics = {
        "best_val_accuracy": result.best_val_accuracy,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "n_train_windows": len(x_train),
        "n_val_windows": len(x_val),
        "n_params": result.back.count_params(),
        "train_seconds": round(result.train_seconds, 2),
        "read_seconds": round(read_seconds, 2),
        "samples_per_second": round(result.samples_per_second, 1),
        # the process's peak so far: what one queued job needs (README, "Scaling out")
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    return model, card(job, labels, unseen_library=held_out, colour_reference=target), metrics


def colour_shifts(cache: Features, *, degree, unseen_library) -> tuple:
    """``(shifts, target)`` for ``train.library_colour`` ``degree``: every library's shift to ``target``,
    the average colouring of the libraries that train (:mod:`instrclf.colour`); ``(None, None)`` when off.

    The libraries that train are every library of the data but the held-out ones, whichever
    folds their notes are in: every fold model learns at the same reference, even when a small
    library (a few notes of your own) has no note in some fold's training folds.
    """
    if degree is None:
        return None, None
    spectra = cache.library_spectra()
    libraries = set(cache.index["library"]) - set(data.held_out(unseen_library))
    target = colour.reference(spectra, libraries, degree)
    return colour.shifts(spectra, degree=degree, target=target), target
