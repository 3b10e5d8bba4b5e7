"""Cross-validated prediction: every fold model on its test fold and on the unseen library.

The fold models of one architecture share the front end, whose output for every window
the ``features`` stage computed once (:mod:`instrclf.features`): only the back ends run
here. The same back ends, averaged, are the architecture's one model for users
(:func:`instrclf.models.assemble`).
"""

import numpy as np
import pandas as pd

from . import backends, colour, data, evaluate, models
from .errors import DataError
from .features import Features
from .settings import INFERENCE_BATCH  # windows per model call: memory and speed only, never results


def load_fold_models(paths: dict) -> tuple:
    """Load the fold models of one architecture and check that their cards agree.

    Parameters
    ----------
    paths : dict
        Test fold -> path of that fold's ``.keras`` model.

    Returns
    -------
    front : keras.Model
        The shared front end (from the first fold's model).
    backs : dict
        Test fold -> trained back end.
    card : ModelCard
        The first fold's card; the others differ only in ``test_folds``.
    """
    backs, cards, front = {}, {}, None
    for fold, path in sorted(paths.items()):
        model, card = models.load(path)
        if card.test_folds != [fold]:
            raise DataError(f"{path}: its card says test fold(s) {card.test_folds}, expected [{fold}]")
        cards[fold] = card
        backs[fold] = models.for_inference(model.get_layer(backends.backend_name(card.model, fold)))
        front = front or model.get_layer("frontend")
    first_fold, first = next(iter(cards.items()))
    for fold, card in cards.items():
        if card.model_copy(update={"test_folds": first.test_folds}) != first:
            raise DataError(f"{paths[fold]} was trained with other settings than {paths[first_fold]}: retrain (dvc repro)")
    return front, backs, first


def _probs(score, x, *, with_stored: bool = False):
    """The probabilities of ``score`` (spectrograms -> probabilities) for every row of the
    :class:`~instrclf.features.Selection` ``x``, :data:`INFERENCE_BATCH` rows at a time (eager:
    no graph retraced per fold model).

    With ``with_stored``, a pair from one read of each batch: (for the rows shifted, for the
    rows as stored, their library's colouring left in).
    """
    runs = [[np.asarray(score(b, training=False)) for b in (batch if with_stored else (batch,))]
            for batch in x.batches(INFERENCE_BATCH, with_stored=with_stored)]
    probs = [np.concatenate(column) for column in zip(*runs)]
    return tuple(probs) if with_stored else probs[0]


def run(name: str, *, paths: dict, features_dir, unseen_library, shift_average: int = 0) -> dict:
    """Evaluate each fold model of architecture ``name`` and build its averaging ensemble.

    Parameters
    ----------
    name : str
        The architecture.
    paths : dict
        Test fold -> the fold model's path (``train@<name>-<fold>``'s output).
    features_dir : str or Path
        The ``features`` stage's output: every window's spectrogram and index.csv.
    unseen_library : str or None
        ``split.unseen_library``; must match what the models were trained without.
    shift_average : int
        ``predict.shift_average``: every window scored as the mean over its spectrum shifted
        by -r..r mel bands, by the fold models here and by the ensemble saved for users
        (:func:`instrclf.models.scores`).

    With the models trained at a colour reference (``train.library_colour``), every library is
    brought to it first, the unseen one from its own windows' mean spectrum (no labels): the
    unseen figures are those of a set of recordings classified together
    (``instrclf classify --as-set``); the ensemble's ``unseen_alone_*`` figures are those of
    each note classified on its own.

    Returns
    -------
    dict
        ``predictions`` (DataFrame: every test note once, by its fold's model, and every
        unseen-library note once, by the ensemble), ``results`` (per fold: test and unseen
        figures; the ensemble's unseen figures; flat numbers), ``model`` and ``card`` (the
        ensemble and its card).
    """
    front, backs, card = load_fold_models(paths)
    cache = Features(features_dir, clean=card.clean, features=card.features)
    index = cache.index
    labels = card.labels
    if data.class_names(index) != labels:
        raise DataError(f"the models' labels {labels} differ from the clean data's {data.class_names(index)}: retrain")
    sets = {f: data.fold_sets(index, test_fold=f, unseen_library=unseen_library) for f in backs}
    first = sets[min(sets)]
    expected = None if first.unseen_note else unseen_library
    if card.unseen_library != expected:
        raise DataError(f"the models were trained without library {card.unseen_library!r}, not {expected!r}: retrain")
    unseen = first.unseen
    shifts = None
    if card.colour_degree is not None:  # every library at the colouring the models learned on
        shifts = colour.shifts(cache.library_spectra(), degree=card.colour_degree, target=card.colour_reference)
    per_fold, rows, unseen_probs, alone_probs = {}, [], [], []
    # read batch by batch, by every fold model
    x_unseen = cache.select(unseen, shifts=shifts) if len(unseen) else None
    for fold, back in backs.items():
        test = sets[fold].test
        score = models.scorer(back, shift_average=shift_average)
        probs = _probs(score, cache.select(test, shifts=shifts))
        predictions = evaluate.aggregate(test, probs, labels=labels, subset="test")
        figures = evaluate.metrics(test, probs, predictions, labels=labels)
        rows.append(predictions)
        if x_unseen is not None:
            if shifts is None:
                p = _probs(score, x_unseen)
            else:  # also each note alone, its colouring left in
                p, alone = _probs(score, x_unseen, with_stored=True)
                alone_probs.append(alone)
            unseen_probs.append(p)
            figures |= _prefixed("unseen_", unseen, p, labels)
        per_fold[str(fold)] = figures
    results = {"folds": per_fold, "unseen_library": expected}
    if x_unseen is not None:
        mean = np.mean(unseen_probs, axis=0)
        results["ensemble"] = _prefixed("unseen_", unseen, mean, labels)
        if alone_probs:  # each note on its own, its library's colouring left in: what a single file gets
            results["ensemble"] |= _prefixed("unseen_alone_", unseen, np.mean(alone_probs, axis=0), labels)
        rows.append(evaluate.aggregate(unseen, mean, labels=labels, subset="unseen"))
    else:
        results["unseen_note"] = first.unseen_note
    ensemble = models.assemble(front, [backs[f] for f in sorted(backs)], name=name, shift_average=shift_average)
    ensemble_card = card.model_copy(update={"test_folds": sorted(backs)})
    return {
        "predictions": pd.concat(rows, ignore_index=True),
        "results": results,
        "model": ensemble,
        "card": ensemble_card,
    }


def _prefixed(prefix: str, index, probs, labels) -> dict:
    predictions = evaluate.aggregate(index, probs, labels=labels, subset="unseen")
    figures = evaluate.metrics(index, probs, predictions, labels=labels)
    return {f"{prefix}{key}": value for key, value in figures.items()}
