"""Run each round-8 mutant alone against its own module's test files (``TESTS`` in ``mutants.py``).

    TREE=/tmp/m8w VENV_BIN=/path/to/.venv/bin python benchmarks/hostile_mutants/round8/run_own_files.py [NN ...]

Applies each patch to the clean tree ``TREE`` (at c115567), runs
``nice -n 10 python -m pytest -q -x -m "not slow" -p no:cacheprovider <its tests>`` with
``PYTHONPATH=$TREE`` and ``$VENV_BIN`` on ``PATH``, restores the tree, and writes
``$TREE.results.json`` (rc, first failing test, last line, seconds). The same as
``rounds.py own round8 --tree $TREE --venv-bin $VENV_BIN``.
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("rounds", os.path.join(HERE, "..", "rounds.py"))
rounds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rounds)

if __name__ == "__main__":
    venv = os.environ.get("VENV_BIN", os.path.dirname(sys.executable))
    rounds.own_files("round8", rounds.load_round("round8"), os.environ["TREE"], venv, sys.argv[1:])
