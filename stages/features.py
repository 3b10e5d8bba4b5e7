"""Stage ``features``: the front end's log-mel spectrogram of every clean window, computed once.

Reads ``clean.*`` and ``features.*``; writes ``--out`` (replaced on success): the windows'
``index.csv``, ``spectrograms.npy`` and ``features.json``, which every ``train@`` and
``predict@`` stage reads instead of recomputing the spectrograms.
"""

import argparse

from instrclf import settings, stage
from instrclf.settings import CleanSettings, FeatureSettings

#: The params this stage reads: dvc.yaml lists exactly these (all of clean: features.json records them).
PARAMS = ("clean", "features")


def parse_args(argv=None):
    """Command-line paths, exactly as dvc.yaml passes them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--clean", required=True, help="clean stage output folder (index.csv + windows)")
    parser.add_argument("--out", required=True, help="features folder (replaced on success)")
    return parser.parse_args(argv)


def main(argv=None):
    """Read params, compute every window's spectrogram, write the features folder."""
    args = parse_args(argv)

    def work():
        params = settings.load(args.params, keys=PARAMS)
        clean, features = settings.section(params, CleanSettings), settings.section(params, FeatureSettings)
        from instrclf import features as spectra  # TensorFlow loads only once the params are good

        return spectra.run(args.clean, args.out, clean=clean, features=features)

    stage.run("features", work)


if __name__ == "__main__":
    main()
