"""Stage ``export@<model>``: the user model as LiteRT (float32, int8 weights), SavedModel and ONNX, with parity figures.

Writes ``--out`` (``models/export/<model>/``, replaced as a whole on success; its layout is
:func:`instrclf.card.export_paths`) and ``--results``, each format's figures against the
Keras model on every clean window. An optional format (int8, ONNX) that cannot be made or
misses its target is left out with one ``warning:`` line; a float format that cannot be
made, or differs from Keras, fails the stage in one line naming the model, format and cause.
"""

import argparse
import sys
from pathlib import Path

from instrclf import settings, stage
from instrclf.settings import ExportSettings

#: The params this stage reads: dvc.yaml lists exactly these (what it exports is the model and its card).
PARAMS = ("export",)


def parse_args(argv=None):
    """Command-line paths, exactly as dvc.yaml passes them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--model", required=True, help="the user model, models/<model>.keras (its card beside it)")
    parser.add_argument("--clean", required=True, help="the clean stage's folder: the windows the exports are checked on")
    parser.add_argument("--out", required=True, help="the export folder, models/export/<model>")
    parser.add_argument("--results", required=True, help="parity figures, JSON")
    return parser.parse_args(argv)


def main(argv=None):
    """Export one model, write its parity figures."""
    args = parse_args(argv)

    def work():
        wanted = settings.section(settings.load(args.params, keys=PARAMS), ExportSettings)
        from instrclf import export  # TensorFlow loads only once the params are good
        from instrclf.layout import write_json

        out = export.run(args.model, clean_dir=args.clean, out_dir=args.out, formats=tuple(wanted.formats))
        for line in out["skipped"]:
            print(f"warning: {line}", file=sys.stderr)
        write_json(args.results, out["results"])
        return {key: value for key, value in out["results"].items() if key.endswith(("_max_abs_diff", "_kept"))}

    stage.run(f"export@{Path(args.model).stem}", work)


if __name__ == "__main__":
    main()
