"""Stage predict@<model>: classify every window of the test fold, then every note."""

import argparse
import sys

from instrclf import data, evaluate, models, params
from instrclf.audio import CleanConfig
from instrclf.errors import InstrclfError
from instrclf.io import write_json
from instrclf.tinysol import N_FOLDS

BATCH_SIZE = 128  # inference only: memory, not results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--model", required=True, help="trained model (.keras, metadata .json beside it)")
    parser.add_argument("--clean", required=True, help="clean stage output folder (index.csv + windows)")
    parser.add_argument("--out", required=True, help="per-note predictions CSV")
    parser.add_argument("--metrics", required=True, help="evaluation metrics JSON")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        test_fold = params.choice(
            "split.test_fold", params.get(params.load(args.params), "split.test_fold"), range(N_FOLDS)
        )
        model, meta = models.load(args.model)
        labels = meta["labels"]
        index = data.select_folds(data.read_index(args.clean), [test_fold])
        n_samples = CleanConfig(**meta["clean"]).window_length
        x = data.load_windows(args.clean, index, n_samples=n_samples)
        probs = model.predict(x, batch_size=BATCH_SIZE, verbose=2)
        predictions = evaluate.aggregate(index, probs, labels=labels)
        metrics = evaluate.metrics(index, probs, predictions, labels=labels)
        evaluate.write_predictions(args.out, predictions)
        write_json(args.metrics, metrics)
    except InstrclfError as exc:
        sys.exit(f"error: {exc}")
    print(", ".join(f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
