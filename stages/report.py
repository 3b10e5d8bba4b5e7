"""Stage ``report@<model>``: a page of every note the model gets wrong, to sort, filter and listen to.

Writes ``--out``: ``index.html`` (self-contained, opens from the file system) and ``media/``
(each wrong note's audio and log-mel spectrogram, 25 notes to a script the page loads),
replaced as a whole on success.
"""

import argparse

from instrclf import report, stage

#: The params this stage reads: none (what it shows comes from the predictions and the data).
PARAMS = ()


def parse_args(argv=None):
    """Command-line paths, exactly as dvc.yaml passes them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the model's name (the page's title)")
    parser.add_argument("--predictions", required=True, help="the model's predictions CSV")
    parser.add_argument("--clean", required=True, help="the clean stage's folder (the windows' audio)")
    parser.add_argument("--features", required=True, help="the features stage's folder (the spectrograms)")
    parser.add_argument("--metadata", required=True, help="the raw metadata CSV (pitch, dynamics)")
    parser.add_argument("--out", required=True, help="the report folder")
    return parser.parse_args(argv)


def main(argv=None):
    """Write the report folder of one model."""
    args = parse_args(argv)

    def work():
        return report.run(args.predictions, clean_dir=args.clean, features_dir=args.features,
                          metadata_csv=args.metadata, out_dir=args.out, model=args.model)

    stage.run(f"report@{args.model}", work)


if __name__ == "__main__":
    main()
