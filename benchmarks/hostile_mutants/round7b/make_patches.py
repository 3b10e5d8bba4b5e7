"""Write each round-7b mutant (mutants.py) as a git diff against a clean tree: TREE=/tmp/m7bw python make_patches.py"""
import os, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mutants import M
ROOT = os.environ.get("TREE", "/tmp/m7bw")
HERE = os.path.dirname(os.path.abspath(__file__))
for mid, f, old, new, desc in M:
    path = os.path.join(ROOT, f)
    text = open(path, encoding="utf-8").read()
    assert text.count(old) == 1, (mid, text.count(old))
    open(path, "w", encoding="utf-8").write(text.replace(old, new))
    diff = subprocess.run(["git", "diff", "--", f], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    subprocess.run(["git", "checkout", "--", f], cwd=ROOT, check=True)
    assert diff, mid
    open(os.path.join(HERE, f"{mid}.patch"), "w", encoding="utf-8").write(diff)
    print(mid)
