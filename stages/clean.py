"""Stage ``clean``: cut every raw note into fixed-length mono windows, plus index.csv.

Reads ``data.target`` and ``clean.*``; writes the windows and ``index.csv`` (``--out``),
the clean figures (``--metrics``) and the threshold-tuning image (``--threshold-plot``).
"""

import argparse

from instrclf import clean, settings, stage
from instrclf.clean_figure import threshold_figure
from instrclf.drawing import save_figure
from instrclf.layout import write_json
from instrclf.settings import CleanSettings, DataSettings

#: The params this stage reads: dvc.yaml lists exactly these.
PARAMS = ("data.target", "clean")


def parse_args(argv=None):
    """Command-line paths, exactly as dvc.yaml passes them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--raw", required=True, help="download's output: TinySOL_metadata.csv + audio/")
    parser.add_argument("--out", required=True, help="folder of windows + index.csv (replaced on success)")
    parser.add_argument("--metrics", required=True, help="JSON figures of the clean run")
    parser.add_argument("--threshold-plot", required=True, help="PNG: signal, envelope and threshold per class")
    return parser.parse_args(argv)


def main(argv=None):
    """Read params, clean the raw set, write the figures and the threshold image."""
    args = parse_args(argv)

    def work():
        params = settings.load(args.params, keys=PARAMS)
        config = settings.section(params, CleanSettings)
        target = DataSettings.key(params, "target")
        figures = clean.run(args.raw, args.out, clean=config, target=target)
        save_figure(threshold_figure(args.raw, clean=config, target=target), args.threshold_plot, dpi=80)
        write_json(args.metrics, figures)
        return figures

    stage.run("clean", work)


if __name__ == "__main__":
    main()
