"""Each escaped round-7b mutant's new test: passes on the clean tree, fails with that mutant applied alone.

Usage: TREE=/tmp/m7bw VENV_BIN=/path/to/.venv/bin python check_new_tests.py  (TREE: a clean checkout holding the new tests)
"""
import os, subprocess, sys
ROOT = os.environ.get("TREE", "/tmp/m7bw")
VENV = os.environ.get("VENV_BIN", os.path.dirname(sys.executable))
HERE = os.path.dirname(os.path.abspath(__file__))
NEW = {
 "20": "tests/test_audio.py::test_a_file_refused_for_its_rate_is_closed",
}
env = dict(os.environ, PYTHONPATH=ROOT, PATH=f"{VENV}:{os.environ['PATH']}")


def pytest(*tests):
    proc = subprocess.run(["nice", "-n", "10", f"{VENV}/python", "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                           *tests], cwd=ROOT, env=env, capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()[-1]


only = sys.argv[1:]
keys = [k for k in NEW if not only or k in only]
if "--no-clean" not in only:
    print("clean:", *pytest(*[NEW[k] for k in keys]), flush=True)
for key in keys:
    patch = next(p for p in sorted(os.listdir(HERE)) if p.startswith(key + "-") and p.endswith(".patch"))
    subprocess.run(["git", "apply", os.path.join(HERE, patch)], cwd=ROOT, check=True)
    try:
        print(key, *pytest(NEW[key]), flush=True)
    finally:
        subprocess.run(["git", "checkout", "--", "instrclf", "stages"], cwd=ROOT, check=True)
