"""Where the models fail, as text for the README: the weakest octaves, dynamics, instruments and
libraries of each model and its most confused pairs, from a run's ``plots/data/breakdown``.

    python benchmarks/where_models_fail.py                       # the workspace's run
    python benchmarks/where_models_fail.py --breakdown plots/data/breakdown --lowest 3 --min-notes 30
"""

import argparse

from instrclf.plots import failure_summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--breakdown", default="plots/data/breakdown", help="the plot stage's breakdown folder")
    parser.add_argument("--lowest", type=int, default=2, help="groups shown per breakdown, lowest accuracy first")
    parser.add_argument("--min-notes", type=int, default=20, help="groups with fewer notes are left out")
    args = parser.parse_args(argv)
    print(failure_summary(args.breakdown, lowest=args.lowest, min_notes=args.min_notes))


if __name__ == "__main__":
    main()
