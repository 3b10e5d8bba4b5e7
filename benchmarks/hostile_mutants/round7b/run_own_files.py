"""Apply each round-7b patch alone to a clean detached checkout, run its own test files, record the first failure.

Usage: TREE=/tmp/m7bw VENV_BIN=/path/to/.venv/bin python run_own_files.py [01 02 ...]
(TREE: ``git worktree add --detach /tmp/m7bw <base commit>``; results go to $TREE.results.json)
"""
import json, os, re, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mutants import M
ROOT = os.environ.get("TREE", "/tmp/m7bw")
PATCHES = os.path.dirname(os.path.abspath(__file__))
VENV = os.environ.get("VENV_BIN", os.path.dirname(sys.executable))
TESTS = {
 "01": ["tests/test_sources_combine.py", "tests/test_sources_local.py"], "02": ["tests/test_sources_local.py"],
 "03": ["tests/test_io.py"], "04": ["tests/test_stage.py"], "05": ["tests/test_card.py", "tests/test_models.py"],
 "06": ["tests/test_augment.py"], "07": ["tests/test_litert.py", "tests/test_cli_litert.py"], "08": ["tests/test_predict.py"],
 "09": ["tests/test_evaluate.py"], "10": ["tests/test_features.py"], "11": ["tests/test_summary.py"],
 "12": ["tests/test_data.py"], "13": ["tests/test_models.py"], "14": ["tests/test_layout.py"],
 "15": ["tests/test_parallel.py"], "16": ["tests/test_train.py"], "17": ["tests/test_export.py"],
 "18": ["tests/test_cli.py"], "19": ["tests/test_settings.py"], "20": ["tests/test_audio.py"],
 "21": ["tests/test_report.py"], "22": ["tests/test_compare.py"], "23": ["tests/test_summary.py"],
 "24": ["tests/test_clean.py"], "25": ["tests/test_plots.py"],
}
only = sys.argv[1:]
env = dict(os.environ, PYTHONPATH=ROOT, PATH=f"{VENV}:{os.environ['PATH']}")
out_path = ROOT.rstrip("/") + ".results.json"
results = json.load(open(out_path)) if os.path.exists(out_path) else {}
for mid, f, old, new, desc in M:
    key = mid[:2]
    if only and key not in only:
        continue
    subprocess.run(["git", "apply", f"{PATCHES}/{mid}.patch"], cwd=ROOT, check=True)
    start = time.time()
    try:
        proc = subprocess.run(["nice", "-n", "10", f"{VENV}/python", "-m", "pytest", "-q", "-x", "-m", "not slow",
                               "-p", "no:cacheprovider", *TESTS[key]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
        text = proc.stdout + proc.stderr
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        text, rc = "TIMEOUT", -1
    finally:
        subprocess.run(["git", "checkout", "--", "."], cwd=ROOT, check=True)
    failed = re.findall(r"^FAILED (\S+)", text, re.M) or re.findall(r"^ERROR (\S+)", text, re.M)
    tail = text.strip().splitlines()[-1] if text.strip() else ""
    results[mid] = {"rc": rc, "first_failure": failed[0] if failed else None, "tail": tail, "seconds": round(time.time() - start),
                    "tests_run": TESTS[key]}
    json.dump(results, open(out_path, "w"), indent=1)
    print(mid, rc, failed[:1], tail, flush=True)
