"""Does the pipeline scale linearly? Clean, features, one epoch of conv2d and predict on 1x, 4x, 16x the data.

For each factor ``f`` the raw set (``--raw``, default ``data/raw``; ``--notes N`` takes N of
its notes, evenly spread) is grown to ``f`` instances of every note: instance 0 is the note
itself, instance ``k`` a copy with a seeded level change (-3..+3 dB) and a faint seeded noise
(-70 dBFS), in the same fold. A small DVC project is made from it (this project's params,
conv2d only, one epoch, test fold 0) and the four stage scripts run one after the other,
each as its own process: per stage the wall time, the time per window, the peak resident
memory (``wait4``: the stage and the workers it waited for) and the files written; then
``dvc commit`` records the outputs (hard-linked into the cache: 16x of the default data is
tens of GB) and ``dvc status`` (the no-op check) is timed, the median of five runs after a
warm-up one; the project is then removed.

    python benchmarks/scale.py [--factors 1 4 16] [--notes N] [--out benchmarks/results/scale.json]
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from instrclf import layout
from instrclf.io import write_json

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: The stages measured, in order: name -> (script arguments, outputs).
STAGES = {
    "clean": (["--raw", "data/raw", "--out", "data/clean", "--metrics", "results/clean.json",
               "--threshold-plot", "plots/clean.png"], ["data/clean"]),
    "features": (["--clean", "data/clean", "--out", "data/features"], ["data/features"]),
    "train": (["--model", "conv2d", "--fold", "0", "--features", "data/features", "--out", "models/folds/conv2d/0.keras",
               "--metrics", "results/train.json", "--timings", "results/timings.json", "--live", "plots/train"],
              ["models/folds/conv2d/0.keras"]),
    "predict": (["--model", "conv2d", "--folds", "models/folds/conv2d", "--features", "data/features",
                 "--out", "data/predictions.csv", "--results", "results/predict.json", "--ensemble", "models/conv2d.keras"],
                ["data/predictions.csv"]),
}
#: Timed ``dvc status`` runs after the warm-up one: the median is reported (one run varies by 20 %).
STATUS_RUNS = 5

DEPS = {"clean": ["data/raw"], "features": ["data/clean"], "train": ["data/features"],
        "predict": ["data/features", "models/folds/conv2d"]}


def grow_raw(source: Path, out: Path, *, factor: int, notes=None, seed=0) -> int:
    """Write a raw set of ``factor`` instances of every note of ``source`` (or of ``notes`` of them) into ``out``; its note count."""
    table = layout.read_metadata_table(source)
    if notes is not None:
        table = table.iloc[np.linspace(0, len(table) - 1, min(notes, len(table))).round().astype(int)]
    rows = []
    for i, row in enumerate(table.to_dict("records")):
        src = source / layout.AUDIO_DIR / row["Path"]
        y, rate = sf.read(src, dtype="float32", always_2d=True)
        info = sf.info(src)
        for k in range(factor):
            path = Path(row["Path"])
            path = path if k == 0 else path.with_name(f"{path.stem}-x{k}{path.suffix}")
            target = out / layout.AUDIO_DIR / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if k == 0:
                shutil.copyfile(src, target)
            else:
                rng = np.random.default_rng([seed, i, k])
                varied = y * 10 ** (rng.uniform(-3, 3) / 20) + 10 ** (-70 / 20) * rng.standard_normal(y.shape)
                sf.write(target, np.clip(varied, -1, 1), rate, subtype=info.subtype, format=info.format)
            rows.append(row | {"Path": path.as_posix()})
    layout.write_metadata(out, rows, other_columns=True)
    return len(rows)


def make_project(folder: Path, raw_source: Path, *, factor: int, notes=None) -> int:
    """A git + DVC project in ``folder``: the grown raw set, params (conv2d, one epoch, fold 0) and the four stages."""
    folder.mkdir(parents=True)
    n_notes = grow_raw(raw_source, folder / "data" / "raw", factor=factor, notes=notes)
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["split"]["test_folds"] = [0]
    params["train"]["models"] = ["conv2d"]
    params["models"]["conv2d"]["epochs"] = 1
    params["train"]["warmup_epochs"] = 0.0
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    stages = {
        name: {"cmd": " ".join([sys.executable, str(ROOT / "stages" / f"{name}.py"), "--params", "params.yaml", *args]),
               "deps": DEPS[name], "outs": outs}
        for name, (args, outs) in STAGES.items()
    }
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False), encoding="utf-8")
    (folder / ".gitignore").write_text("/data\n/models\n/results\n/plots\nstage.log\n", encoding="utf-8")
    git = ["git", "-c", "user.name=scale", "-c", "user.email=scale@localhost"]
    for command in (["git", "init", "-q"], [BIN / "dvc", "init", "-q"], [BIN / "dvc", "config", "core.analytics", "false"],
                    # the cache hard-links the outputs instead of copying them: 16x is tens of GB
                    [BIN / "dvc", "config", "cache.type", "hardlink"],
                    ["git", "add", "-A"], [*git, "commit", "-qm", "scale benchmark project"]):  # dvclive needs a commit
        subprocess.run(command, cwd=folder, check=True)
    return n_notes


def measured(command, cwd) -> dict:
    """Run ``command``; its wall seconds and peak resident memory (MiB, this process and the children it waited for)."""
    start = time.perf_counter()
    with open(Path(cwd) / "stage.log", "ab") as log:
        proc = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=os.environ | {"CI": "1"})
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        tail = (Path(cwd) / "stage.log").read_text(errors="replace").splitlines()[-5:]
        raise SystemExit(f"scale: {' '.join(map(str, command))} failed ({proc.returncode}):\n" + "\n".join(tail))
    return {"seconds": round(time.perf_counter() - start, 2), "peak_memory_mb": round(usage.ru_maxrss / 1024)}


def files_under(folder: Path, paths) -> int:
    return sum(1 for p in paths for f in ([folder / p] if (folder / p).is_file() else (folder / p).rglob("*")) if f.is_file())


def run_factor(work: Path, raw_source: Path, *, factor: int, notes=None) -> dict:
    """Every figure of one factor."""
    folder = work / f"x{factor}"
    n_notes = make_project(folder, raw_source, factor=factor, notes=notes)
    result = {"factor": factor, "notes": n_notes, "stages": {}}
    for name, (args, outs) in STAGES.items():
        figures = measured([sys.executable, str(ROOT / "stages" / f"{name}.py"), "--params", "params.yaml", *args], folder)
        result["stages"][name] = figures | {"files_written": files_under(folder, outs)}
    result["windows"] = len(layout.read_index(folder / "data" / "clean"))
    for figures in result["stages"].values():
        figures["ms_per_window"] = round(1000 * figures["seconds"] / result["windows"], 3)
    subprocess.run([BIN / "dvc", "commit", "-f", "-q"], cwd=folder, check=True, capture_output=True)
    status = []
    for _ in range(1 + STATUS_RUNS):  # the first warms DVC's hash cache; the others are the no-op check as a user meets it
        start = time.perf_counter()
        out = subprocess.run([BIN / "dvc", "status"], cwd=folder, check=True, capture_output=True, text=True).stdout
        status.append(round(time.perf_counter() - start, 2))
    result["dvc_status_seconds"], result["dvc_status_runs"] = float(np.median(status[1:])), status[1:]
    result["dvc_status"] = out.strip()
    result["files_in_data"] = files_under(folder, ["data"])
    shutil.rmtree(folder)  # the next factor needs the disk
    return result


def table(results: list) -> str:
    """The README's Markdown table of the results."""
    lines = ["| factor | windows | stage | seconds | ms per window | peak memory MiB | files written |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        for name, s in r["stages"].items():
            lines.append(f"| {r['factor']}x | {r['windows']:,} | {name} | {s['seconds']} | {s['ms_per_window']} | "
                         f"{s['peak_memory_mb']:,} | {s['files_written']:,} |")
        lines.append(f"| {r['factor']}x | {r['windows']:,} | `dvc status` | {r['dvc_status_seconds']} | | | |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=ROOT / "data" / "raw", help="the raw set to grow (default data/raw)")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 4, 16], help="instances of every note (default 1 4 16)")
    parser.add_argument("--notes", type=int, help="use only this many notes of --raw, evenly spread (a quick run)")
    parser.add_argument("--work", type=Path, help="where the projects are made (default: a temporary folder, removed)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json", help="the JSON written")
    args = parser.parse_args(argv)
    if any(f < 1 for f in args.factors):
        parser.error("--factors must be >= 1")
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scale.", dir=args.work) as work:
        results = []
        for factor in args.factors:
            results.append(run_factor(Path(work), args.raw, factor=factor, notes=args.notes))
            print(json.dumps(results[-1]), flush=True)
    base = results[0]
    ratios = {
        f"{r['factor']}x": {
            name: {"memory": round(s["peak_memory_mb"] / base["stages"][name]["peak_memory_mb"], 2),
                   "time_per_window": round(s["ms_per_window"] / base["stages"][name]["ms_per_window"], 2)}
            for name, s in r["stages"].items()
        }
        for r in results[1:]
    }
    write_json(args.out, {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                          "command": " ".join(["python", "benchmarks/scale.py", *(argv if argv is not None else sys.argv[1:])]),
                          "results": results, "ratios_to_first": ratios})
    print(table(results))


if __name__ == "__main__":
    main()
