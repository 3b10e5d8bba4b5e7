"""Write round 8's patches (``<id>.patch`` beside this file) from ``mutants.py``.

    git worktree add --detach /tmp/m8w c115567
    TREE=/tmp/m8w python benchmarks/hostile_mutants/round8/make_patches.py

Each mutant's old text must occur exactly once in its file of the clean tree ``TREE``; the
tree is restored after each. The same as ``rounds.py patches round8 --tree $TREE``.
"""

import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("rounds", os.path.join(HERE, "..", "rounds.py"))
rounds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rounds)

if __name__ == "__main__":
    rounds.write_patches("round8", rounds.load_round("round8"), os.environ["TREE"])
