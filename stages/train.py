"""Stage ``train@<model>-<fold>``: fit one model for one test fold on the windows' spectrograms.

Trains on the three folds other than the test fold and its validation fold (the next
one), never on the unseen library; saves the raw-audio model with its card beside it.
Under ``train.distribute: multi_worker`` every worker runs this same command (its own
``TF_CONFIG``); only the chief writes the outputs (:func:`instrclf.train.is_chief`).
"""

import argparse

from instrclf import models, settings, stage
from instrclf.layout import write_json

#: The params this stage reads: dvc.yaml lists exactly these (``<model>``: the matrix's model).
PARAMS = (
    "seed",
    "data.target",
    "clean",
    "split.unseen_library",
    "features",
    *(f"train.{name}" for name in settings.TRAIN_KEYS),
    "models.<model>",
)


def parse_args(argv=None):
    """Command-line paths, exactly as dvc.yaml passes them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--model", required=True, help=f"one of {list(settings.MODEL_NAMES)}")
    parser.add_argument("--fold", required=True, type=int, help="the test fold, 0-4")
    parser.add_argument("--features", required=True, help="features stage output folder (index.csv + spectrograms)")
    parser.add_argument("--out", required=True, help="trained model, .keras (its card .json goes beside it)")
    parser.add_argument("--metrics", required=True, help="training figures, JSON")
    parser.add_argument("--timings", required=True, help="wall times and peak memory, JSON (differ from run to run)")
    parser.add_argument("--live", required=True, help="dvclive folder for per-epoch curves")
    return parser.parse_args(argv)


def main(argv=None):
    """Read params, train, save the model, its card, the training figures and timings (the chief only)."""
    args = parse_args(argv)

    def work():
        settings.check_model(args.model)
        params = settings.load(args.params, keys=[key.replace("<model>", args.model) for key in PARAMS])
        job = settings.TrainingJob.from_params(params, model=args.model, fold=args.fold)
        from instrclf import train  # TensorFlow loads only once the params are known to be good

        model, card, figures = train.run(job, features_dir=args.features, live_dir=args.live)
        if train.is_chief(job.distribute):  # the other workers hold the same weights
            models.save(model, args.out, card=card)
            write_json(args.metrics, {k: v for k, v in figures.items() if k not in train.TIMING_KEYS})
            write_json(args.timings, {k: figures[k] for k in train.TIMING_KEYS})
        return figures

    stage.run(f"train@{args.model}-{args.fold}", work)


if __name__ == "__main__":
    main()
