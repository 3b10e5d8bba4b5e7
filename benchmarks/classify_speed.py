"""How fast is ``instrclf classify``? Keras vs LiteRT start-up and memory, cost per file, batched calls vs one predict per file.

On a trained model (its card ``.json`` beside it) and N one-second recordings written to a
temporary folder (copies of the clean stage's windows when ``--clean`` holds an index.csv,
real audio at the model's rate; otherwise synthetic harmonic tones at 44.1 kHz, which
classify resamples):

1. ``instrclf classify`` as a subprocess (the console script of this venv), once per
   runtime: ``--model M --runtime keras`` (TensorFlow and Keras) and ``--model T`` with
   ``T`` the model's LiteRT export (``--litert``, by default the export stage's
   ``models/export/<model>/<model>.tflite``; no TensorFlow is imported), both with ``--json
   --top-k <all labels>``, each with ONE file and with all N: start-up to the first result
   is the one-file wall time, the per-file cost is ``(t_N - t_1) / (N - 1)``; peak RSS and
   CPU time of each child (``os.wait4``). Each run is repeated (``--repeat``) after one
   untimed warm-up run (the OS file cache), and the fastest is kept. The two runtimes'
   probabilities are compared on every label of every file (max |dp|). With no more windows
   than ``--batch-size``, Keras's runs make one (padded) model call, so its per-file part is
   reading and cutting only and is easily lost in the start-up's noise: the script says so;
   use ``--files 1000``.
2. In this process, the Keras model loaded once, the same files:
   - *classic*: per file, read and cut its windows as instrclf does
     (``audio.prepare(*audio.load(path), **card.clean)``, bit-identical to the
     ``audio.stream_windows`` classify reads with), then one ``model.predict(windows)``
     call per file, the file's probabilities being the mean over its windows;
   - *batched*: :func:`instrclf.cli.classify_files`, the function ``instrclf classify``
     runs (windows of consecutive files share calls of ``--batch-size`` windows);
   - *batched, plain Keras*: every file cut, all windows concatenated, one
     ``model.predict(all, batch_size=--batch-size)``;
   - *read + cut only*: the audio part alone, no model;
   - *batched, LiteRT*: :func:`instrclf.cli.classify_files` on the LiteRT model, with
     classify's windows per call for it (:func:`instrclf.cli.default_batch`).
   Each is warmed up once (graph tracing) and timed ``--repeat`` times; the fastest is kept.
   The classic and batched probabilities are compared (argmax per file, max |dp| <= 1e-4),
   and the CLI's JSON output is compared with the batched ones (top-1 label and probability).

Targets: the per-file part of classify >= 10x faster than the classic loop's time per
file, and batched prediction >= 2x the classic loop's files/s; with LiteRT, start-up to the
first result <= 1.5 s and <= a fifth of Keras's, peak memory <= 300 MB, and probabilities
within 1e-4 of Keras's. A Markdown table is printed and a JSON report written
(atomically). Timings move with the machine's other load: the load average is recorded at
the start and the end.

    python benchmarks/classify_speed.py [--model models/conv2d.keras] [--files 100] [--clean data/clean]
    python benchmarks/classify_speed.py --model /tmp/tiny/conv2d.keras --files 20 --synthetic --out /tmp/cs.json
"""

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model, version  # benchmarks/machine.py (the script's folder is on sys.path)
import numpy as np
import soundfile as sf

from instrclf.settings import INFERENCE_BATCH
from instrclf import audio, cli, data, layout, settings
from instrclf.card import card_path, export_dir, export_paths, read_card
from instrclf.io import write_json
from instrclf.litert import LiteRtModel

ROOT = Path(__file__).resolve().parents[1]

#: Probabilities of two paths count as the same within this (the issue's tolerance).
TOLERANCE = 1e-4

#: Targets: per-file part of classify vs one predict per file; batched vs the classic loop.
TARGET_PER_FILE, TARGET_BATCHED = 10.0, 2.0

#: Targets of classify with LiteRT: start-up to the first result (s, and at most this share of
#: Keras's) and peak resident memory (MB, 10^6 bytes).
TARGET_LITERT_STARTUP_S, TARGET_LITERT_STARTUP_SHARE, TARGET_LITERT_PEAK_MB = 1.5, 0.2, 300.0


# --------------------------------------------------------------------------- recordings


def from_clean(clean_dir: Path, n: int, out: Path) -> tuple:
    """Write ``n`` windows of the clean stage, spread evenly over its index, as ``out/NNNN_<label>.wav``.

    Returns the paths and the windows' labels (the windows are 1-s WAVs at the clean rate already).
    """
    index = layout.read_index(clean_dir)
    if n > len(index):
        raise SystemExit(f"--files {n}: {clean_dir} holds only {len(index)} windows")
    rows = index.iloc[np.linspace(0, len(index) - 1, n).round().astype(int)]
    paths, labels = [], []
    for i, (rel, label) in enumerate(zip(rows["window"], rows["label"], strict=True)):
        path = out / f"{i:04d}_{label}.wav"
        data.write_window(clean_dir, rel, path, sample_rate=_clean_rate())
        paths.append(path)
        labels.append(label)
    return paths, labels


def _clean_rate() -> int:
    """``clean.sample_rate`` of the project's params.yaml: the rate of the clean windows."""
    return settings.section(settings.load(ROOT / "params.yaml", keys=("clean",)), settings.CleanSettings).sample_rate


def synthetic(n: int, out: Path, *, seed: int, sample_rate=44100, seconds=1.0) -> list:
    """Write ``n`` harmonic tones (random pitch, partials, attack, level -30..-3 dBFS, a little noise) as 16-bit WAVs."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(sample_rate * seconds)) / sample_rate
    paths = []
    for i in range(n):
        f0 = 55.0 * 2 ** rng.uniform(0, 5)  # A1 .. A6
        partials = np.arange(1, 9)
        partials = partials[f0 * partials < sample_rate / 2]
        gains = rng.uniform(0.2, 1.0, len(partials)) / partials ** rng.uniform(0.5, 2.0)
        y = sum(g * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) for g, k in zip(gains, partials))
        attack = rng.uniform(0.005, 0.1)
        y = y * np.minimum(1.0, t / attack) * np.exp(-t * rng.uniform(0.0, 3.0))
        y = y + 0.002 * np.std(y) * rng.standard_normal(len(t))
        y = y / np.abs(y).max() * audio.db_to_amplitude(rng.uniform(-30, -3))
        path = out / f"{i:04d}_tone.wav"
        audio.write_pcm16(path, y.astype(np.float32), sample_rate=sample_rate)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- the command line, as a subprocess


def _command() -> list:
    script = Path(sys.executable).parent / "instrclf"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "instrclf.cli"]


def run_cli(command: list, files: list, *, work: Path) -> dict:
    """Run ``command + files`` once; wall time, peak RSS and CPU of the child, its JSON lines."""
    out_path, err_path = work / "cli.stdout", work / "cli.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        child = subprocess.Popen([*command, *map(str, files)], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    stdout = out_path.read_text(encoding="utf-8")
    if child.returncode != 0:
        tail = err_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise SystemExit(f"classify_speed: {shlex.join(command)} ... exited {child.returncode}:\n{tail}")
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    if len(lines) != len(files):
        raise SystemExit(f"classify_speed: expected {len(files)} JSON lines from classify, got {len(lines)}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
        "peak_rss_mb": usage.ru_maxrss * 1024 / 1e6,
        "lines": lines,
    }


def time_cli(command: list, files: list, *, repeat: int, work: Path) -> dict:
    """The fastest of ``repeat`` runs of classify on ``files`` (all runs' figures kept)."""
    runs = [run_cli(command, files, work=work) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["wall_s"])
    return {
        "files": len(files),
        "wall_s": best["wall_s"],
        "cpu_s": best["cpu_s"],
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "runs_wall_s": [r["wall_s"] for r in runs],
        "lines": best["lines"],
    }


def time_runtime(command: list, files: list, *, repeat: int, work: Path) -> dict:
    """One warm-up run, then the fastest of ``repeat`` runs of ``command`` on one file and on all ``files``."""
    run_cli(command, files[:1], work=work)  # warm-up: the OS file cache, not the command's cost
    one = time_cli(command, files[:1], repeat=repeat, work=work)
    many = time_cli(command, files, repeat=repeat, work=work)
    marginal = many["wall_s"] - one["wall_s"]
    return {
        "one": one,
        "many": many,
        "marginal_s": marginal,
        "per_file_s": marginal / (len(files) - 1) if marginal > 0 else None,
        "spread_s": max(max(r["runs_wall_s"]) - min(r["runs_wall_s"]) for r in (one, many)),
    }


def compare_runtimes(a: list, b: list) -> dict:
    """Two runtimes' JSON lines (``--top-k`` all labels) file by file: status, windows, every label's probability."""
    same_status, diff, top1 = 0, 0.0, 0
    for x, y in zip(a, b, strict=True):
        same_status += int((x["file"], x["status"], x["windows"], x["error"]) == (y["file"], y["status"], y["windows"], y["error"]))
        px = {t["label"]: t["probability"] for t in x["top"]}
        py = {t["label"]: t["probability"] for t in y["top"]}
        if px.keys() != py.keys():
            diff = float("inf")
        elif px:
            diff = max(diff, max(abs(px[k] - py[k]) for k in px))
            top1 += int(x["top"][0]["label"] == y["top"][0]["label"])
    compared = sum(bool(x["top"]) for x in a)
    return {
        "files": len(a),
        "status_equal": same_status,
        "files_compared": compared,
        "top1_equal": top1,
        "max_abs_diff": diff,
        "same": same_status == len(a) and diff <= TOLERANCE,
    }


# --------------------------------------------------------------------------- in process


def cut(paths, clean: dict) -> list:
    """Each file's windows, read and cut in one piece (``prepare(*load(path))``)."""
    return [audio.prepare(*audio.load(path), **clean) for path in paths]


def classic(model, paths, clean: dict) -> list:
    """One ``model.predict`` call per file; each file's mean probabilities (None if silent)."""
    out = []
    for path in paths:
        windows = audio.prepare(*audio.load(path), **clean)
        if len(windows):
            probs = np.asarray(model.predict(windows[..., np.newaxis], verbose=0), dtype=np.float64)
            out.append(probs.mean(axis=0))
        else:
            out.append(None)
    return out


def batched(model, card, paths, *, batch: int) -> list:
    """:func:`instrclf.cli.classify_files`, what ``instrclf classify`` runs; each file's probabilities."""
    results = list(cli.classify_files(model, card, [(str(p), None) for p in paths], batch_windows=batch))
    for r in results:
        if r.error is not None:
            raise SystemExit(f"classify_speed: {r.path}: {r.error}")
    return [r.probs if r.windows else None for r in results]


def batched_plain(model, paths, clean: dict, *, batch: int) -> list:
    """All files cut, their windows concatenated, one ``model.predict(all, batch_size=batch)``."""
    parts = cut(paths, clean)
    counts = np.array([len(w) for w in parts])
    x = np.concatenate(parts)[..., np.newaxis]
    probs = np.asarray(model.predict(x, batch_size=batch, verbose=0), dtype=np.float64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sums = np.add.reduceat(probs, starts[counts > 0], axis=0)
    out, it = [], iter(sums)
    for n in counts:
        out.append(next(it) / n if n else None)
    return out


def best_of(fn, repeat: int) -> tuple:
    """``(fastest wall seconds, all wall seconds, the last result)`` of ``repeat`` calls of ``fn()``."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), times, result


def compare(a: list, b: list) -> dict:
    """Argmax agreement and max |dp| between two lists of per-file probabilities (None: silent)."""
    silent_same = all((x is None) == (y is None) for x, y in zip(a, b, strict=True))
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    argmax = sum(int(np.argmax(x) == np.argmax(y)) for x, y in pairs)
    diff = max((float(np.abs(x - y).max()) for x, y in pairs), default=0.0)
    return {
        "files_compared": len(pairs),
        "argmax_equal": argmax,
        "max_abs_diff": diff,
        "silent_same": silent_same,
        "same": silent_same and argmax == len(pairs) and diff <= TOLERANCE,
    }


def compare_cli(lines: list, probs: list, labels: list) -> dict:
    """The CLI's JSON lines against in-process probabilities: status, top-1 label and its probability."""
    top, diff, status = 0, 0.0, 0
    for line, p in zip(lines, probs, strict=True):
        status += int((line["status"] == "silent") == (p is None) and line["status"] != "error")
        if p is not None and line["top"]:
            i = int(np.argmax(p))
            top += int(line["top"][0]["label"] == labels[i])
            diff = max(diff, abs(line["top"][0]["probability"] - float(p[i])))
    compared = sum(p is not None for p in probs)
    return {
        "files_compared": compared,
        "status_equal": status,
        "top1_equal": top,
        "max_abs_diff_top1": diff,
        "same": status == len(lines) and top == compared and diff <= TOLERANCE,
    }


# --------------------------------------------------------------------------- report


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(rows) -> str:
    """Markdown table of ``(what, files, windows, wall_s, peak_rss_mib)`` rows."""
    out = [
        "| what | files | windows | wall (s) | files/s | ms/file | peak RSS (MiB) |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for what, files, windows, wall, rss in rows:
        rate = files / wall if wall and wall > 0 else None
        per = 1000 * wall / files if wall is not None and files else None
        out.append(f"| {what} | {files} | {_fmt(windows, 'd')} | {_fmt(wall, '.3f')} | {_fmt(rate, '.1f')} "
                   f"| {_fmt(per, '.2f')} | {_fmt(rss, '.0f')} |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "conv2d.keras",
                        help="a trained model, its card .json beside it (default models/conv2d.keras)")
    parser.add_argument("--litert", type=Path, default=None,
                        help="its LiteRT export, card beside it (default: the export stage's "
                             "models/export/<model>/<model>.tflite beside --model)")
    parser.add_argument("--files", type=int, default=100, help="number of 1-s recordings (default 100, >= 2)")
    parser.add_argument("--clean", type=Path, default=ROOT / "data" / "clean",
                        help="clean stage output to take real windows from (default data/clean); "
                             "synthetic 44.1 kHz tones when it holds no index.csv")
    parser.add_argument("--synthetic", action="store_true", help="use synthetic tones even if --clean exists")
    parser.add_argument("--batch-size", type=int, default=INFERENCE_BATCH,
                        help=f"windows per model call of the batched paths (default {INFERENCE_BATCH}, classify's)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each measurement, fastest kept (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic tones")
    parser.add_argument("--work", default="/var/tmp" if os.path.isdir("/var/tmp") else None,
                        help="where the recordings are written and removed (default /var/tmp)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "classify_speed.json",
                        help="JSON report, written atomically (default benchmarks/results/classify_speed.json)")
    args = parser.parse_args()
    if args.files < 2:
        parser.error("--files must be >= 2 (the per-file cost is (t_N - t_1) / (N - 1))")
    if args.repeat < 1 or args.batch_size < 1:
        parser.error("--repeat and --batch-size must be >= 1")
    if not args.model.is_file():
        raise SystemExit(f"classify_speed: {args.model}: no such model (train it: dvc repro, or pass --model)")
    litert_path = args.litert or export_paths(export_dir(args.model), args.model.stem)["tflite"]
    if not litert_path.is_file():
        raise SystemExit(f"classify_speed: {litert_path}: no such LiteRT model (export it: dvc repro export@"
                         f"{args.model.stem}, or pass --litert)")
    n_labels = len(read_card(card_path(args.model)).labels)

    load_start = os.getloadavg()[0]
    use_clean = not args.synthetic and (args.clean / layout.INDEX_FILE).is_file()
    every_label = ["--json", "--top-k", str(n_labels)]
    command = [*_command(), "classify", "--model", str(args.model), "--runtime", "keras", *every_label]
    if args.batch_size != INFERENCE_BATCH:
        command += ["--batch-size", str(args.batch_size)]
    litert_command = [*_command(), "classify", "--model", str(litert_path), *every_label]

    with tempfile.TemporaryDirectory(prefix="classify_speed.", dir=args.work) as work:
        work = Path(work)
        rec = work / "audio"
        rec.mkdir()
        if use_clean:
            paths, truth = from_clean(args.clean, args.files, rec)
            source = f"clean windows of {args.clean}"
        else:
            paths, truth = synthetic(args.files, rec, seed=args.seed), None
            source = "synthetic harmonic tones, 44.1 kHz"
        info = [sf.info(p) for p in paths]
        rates = sorted({i.samplerate for i in info})
        audio_s = float(sum(i.duration for i in info))
        print(f"classify_speed: {args.files} recordings ({source}, {audio_s:.1f} s of audio, {rates} Hz); "
              f"model {args.model}; load average {load_start:.2f} on {os.cpu_count()} cores", file=sys.stderr)

        # 1. the command line, a fresh process per run, with each runtime
        print(f"classify_speed: timing {shlex.join(command[:1])} classify with Keras and with LiteRT, 1 and "
              f"{args.files} files, {args.repeat} run(s) each after one warm-up", file=sys.stderr)
        keras_cli = time_runtime(command, paths, repeat=args.repeat, work=work)
        litert_cli = time_runtime(litert_command, paths, repeat=args.repeat, work=work)
        one, many, marginal = keras_cli["one"], keras_cli["many"], keras_cli["marginal_s"]
        per_file_cli, spread = keras_cli["per_file_s"], keras_cli["spread_s"]
        runtimes = compare_runtimes(many["lines"], litert_cli["many"]["lines"])

        # 2. in process, the model loaded once
        print("classify_speed: in process: loading the model", file=sys.stderr)
        from instrclf.models import load
        from instrclf.runtime import tf

        start = time.perf_counter()
        model, card = load(args.model)
        load_s = time.perf_counter() - start
        clean = card.clean.model_dump()
        # warm-up, untimed: graph tracing for every input shape the timed runs meet (the batched
        # paths on all files: their last call has its own shape; one file for the classic loop)
        classic(model, paths[:1], clean)
        batched(model, card, paths, batch=args.batch_size)
        batched_plain(model, paths, clean, batch=args.batch_size)
        print(f"classify_speed: in process: {args.repeat} timed run(s) of each path", file=sys.stderr)
        t_cut, cut_runs, windows = best_of(lambda: cut(paths, clean), args.repeat)
        t_classic, classic_runs, p_classic = best_of(lambda: classic(model, paths, clean), args.repeat)
        t_batched, batched_runs, p_batched = best_of(lambda: batched(model, card, paths, batch=args.batch_size),
                                                     args.repeat)
        t_plain, plain_runs, p_plain = best_of(lambda: batched_plain(model, paths, clean, batch=args.batch_size),
                                               args.repeat)
        lite = LiteRtModel(litert_path)
        lite_batch = cli.default_batch(lite)
        batched(lite, card, paths, batch=lite_batch)  # warm-up: the tensors' allocation for each call size
        t_lite, lite_runs, p_lite = best_of(lambda: batched(lite, card, paths, batch=lite_batch), args.repeat)
        self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    n_windows = int(sum(len(w) for w in windows))
    silent = int(sum(len(w) == 0 for w in windows))
    same = compare(p_classic, p_batched)
    same_plain = compare(p_plain, p_batched)
    same_cli = compare_cli(many["lines"], p_batched, card.labels)
    same_lite = compare(p_batched, p_lite)
    litert_one, litert_many = litert_cli["one"], litert_cli["many"]
    startup_share = litert_one["wall_s"] / one["wall_s"]
    litert_peak_mb = max(litert_one["peak_rss_mb"], litert_many["peak_rss_mb"])
    per_file_classic = t_classic / args.files
    per_file_ratio = per_file_classic / per_file_cli if per_file_cli else None
    batched_ratio = t_classic / t_batched
    plain_ratio = t_classic / t_plain
    accuracy = None
    if truth is not None:
        hits = [p is not None and card.labels[int(np.argmax(p))] == t for p, t in zip(p_batched, truth, strict=True)]
        accuracy = {"top1_matches_label": int(sum(hits)), "files": len(hits)}

    litert_marginal = litert_cli["marginal_s"]
    rows = [
        ("`instrclf classify`, Keras, 1 file (start-up: import, model load, 1 file)", 1, int(len(windows[0])),
         one["wall_s"], one["peak_rss_mib"]),
        ("`instrclf classify`, LiteRT, 1 file (start-up: import, model load, 1 file)", 1, int(len(windows[0])),
         litert_one["wall_s"], litert_one["peak_rss_mib"]),
        (f"`instrclf classify`, Keras, {args.files} files", args.files, n_windows, many["wall_s"], many["peak_rss_mib"]),
        (f"`instrclf classify`, LiteRT, {args.files} files", args.files, n_windows, litert_many["wall_s"],
         litert_many["peak_rss_mib"]),
        ("`instrclf classify`, Keras, per-file part: (t_N - t_1) / (N - 1)", args.files - 1, None,
         marginal if marginal > 0 else None, None),
        ("`instrclf classify`, LiteRT, per-file part: (t_N - t_1) / (N - 1)", args.files - 1, None,
         litert_marginal if litert_marginal > 0 else None, None),
        ("in process: read + cut only (no model)", args.files, n_windows, t_cut, None),
        ("in process: classic, one `model.predict` per file", args.files, n_windows, t_classic, None),
        (f"in process: batched, `cli.classify_files` ({args.batch_size} windows/call)", args.files, n_windows,
         t_batched, None),
        (f"in process: batched, `model.predict(all, batch_size={args.batch_size})`", args.files, n_windows,
         t_plain, None),
        (f"in process: batched, LiteRT `cli.classify_files` ({lite_batch} windows/call)", args.files, n_windows,
         t_lite, None),
    ]

    def verdict(value, goal):
        return "-" if value is None else "yes" if value >= goal else "no"

    targets = [
        ("per-file part of `instrclf classify` vs one `model.predict` per file", per_file_ratio,
         f">= {TARGET_PER_FILE:g}x", verdict(per_file_ratio, TARGET_PER_FILE)),
        ("batched (`cli.classify_files`) vs classic loop, files/s", batched_ratio, f">= {TARGET_BATCHED:g}x",
         verdict(batched_ratio, TARGET_BATCHED)),
        ("batched (plain `model.predict`) vs classic loop, files/s", plain_ratio, f">= {TARGET_BATCHED:g}x",
         verdict(plain_ratio, TARGET_BATCHED)),
    ]
    def at_most(value, goal):
        return "-" if value is None else "yes" if value <= goal else "no"

    litert_targets = [
        ("LiteRT start-up to the first result (1 file)", f"{litert_one['wall_s']:.2f} s",
         f"<= {TARGET_LITERT_STARTUP_S:g} s", at_most(litert_one["wall_s"], TARGET_LITERT_STARTUP_S)),
        ("LiteRT start-up vs Keras's", f"{startup_share:.2f} ({one['wall_s']:.2f} s)",
         f"<= {TARGET_LITERT_STARTUP_SHARE:g}", at_most(startup_share, TARGET_LITERT_STARTUP_SHARE)),
        ("LiteRT peak memory (1 file and all files)", f"{litert_peak_mb:.0f} MB",
         f"<= {TARGET_LITERT_PEAK_MB:g} MB", at_most(litert_peak_mb, TARGET_LITERT_PEAK_MB)),
        ("LiteRT vs Keras `instrclf classify` output, every label of every file",
         f"max abs dp {runtimes['max_abs_diff']:.1e}, status {runtimes['status_equal']}/{runtimes['files']}, "
         f"top-1 {runtimes['top1_equal']}/{runtimes['files_compared']}", f"<= {TOLERANCE:g}",
         "yes" if runtimes["same"] else "no"),
    ]
    load_end = os.getloadavg()[0]
    print()
    print(f"**classify speed**: {args.model} ({card.model}, {len(card.labels)} labels, "
          f"{card.clean.sample_rate} Hz x {card.clean.delta_time} s windows); {args.files} recordings: {source}; "
          f"{cpu_model()}, {os.cpu_count()} cores, load average {load_start:.2f} -> {load_end:.2f}; "
          f"TensorFlow {version('tensorflow')}, Keras {version('keras')}, ai-edge-litert {version('ai-edge-litert')}; "
          f"LiteRT model {litert_path}; fastest of {args.repeat}")
    print()
    print(table(rows))
    print()
    print("| target | measured | goal | met |")
    print("|---|--:|--:|:-:|")
    for what, value, goal, met in targets:
        print(f"| {what} | {_fmt(value, '.1f')}{'x' if value is not None else ''} | {goal} | {met} |")
    print(f"| same predictions, classic vs batched | argmax {same['argmax_equal']}/{same['files_compared']}, "
          f"max abs dp {same['max_abs_diff']:.1e} | <= {TOLERANCE:g} | {'yes' if same['same'] else 'no'} |")
    print(f"| same predictions, plain `model.predict` vs batched | argmax {same_plain['argmax_equal']}/"
          f"{same_plain['files_compared']}, max abs dp {same_plain['max_abs_diff']:.1e} | <= {TOLERANCE:g} "
          f"| {'yes' if same_plain['same'] else 'no'} |")
    print(f"| `instrclf classify` output vs in-process batched | top-1 {same_cli['top1_equal']}/"
          f"{same_cli['files_compared']}, max abs dp {same_cli['max_abs_diff_top1']:.1e} | <= {TOLERANCE:g} "
          f"| {'yes' if same_cli['same'] else 'no'} |")
    print(f"| in-process batched, LiteRT vs Keras | argmax {same_lite['argmax_equal']}/{same_lite['files_compared']}, "
          f"max abs dp {same_lite['max_abs_diff']:.1e} | <= {TOLERANCE:g} | {'yes' if same_lite['same'] else 'no'} |")
    for what, value, goal, met in litert_targets:
        print(f"| {what} | {value} | {goal} | {met} |")
    print()
    print(f"start-up (1 file) Keras {one['wall_s']:.2f} s, LiteRT {litert_one['wall_s']:.2f} s; per file in classify "
          f"Keras {_fmt(per_file_cli and 1000 * per_file_cli, '.2f')} ms, LiteRT "
          f"{_fmt(litert_cli['per_file_s'] and 1000 * litert_cli['per_file_s'], '.2f')} ms vs classic "
          f"{1000 * per_file_classic:.2f} ms; "
          f"in-process model load {load_s:.2f} s; {silent} silent file(s)"
          + (f"; top-1 = the window's label for {accuracy['top1_matches_label']}/{accuracy['files']} "
             "(windows from every fold, trained on most: not a test score)" if accuracy else ""))

    if n_windows <= args.batch_size:
        print(f"note: all {n_windows} windows fit in one model call of {args.batch_size} (padded), for 1 file as for "
              f"{args.files}: the model's cost is in the start-up and the per-file part is reading and cutting; "
              f"--files above {args.batch_size} (e.g. 1000) makes classify's per-file part include the model")
    if args.repeat > 1 and (marginal <= 0 or spread > marginal / 2):
        print(f"note: the runs of classify spread over {spread:.2f} s, against a per-file part of {marginal:.2f} s "
              "in all: that figure is mostly noise here (more --files, more --repeat or a quieter machine)")

    report = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "platform": platform.platform(),
            "devices": [d.name for d in tf.config.list_physical_devices()],
            "load_average_start": load_start,
            "load_average_end": load_end,
        },
        "versions": {p: version(p) for p in ("tensorflow", "keras", "kapre", "ai-edge-litert", "numpy", "soxr", "soundfile")}
        | {"python": platform.python_version()},
        "model": {"path": str(args.model), "name": card.model, "labels": card.labels, "clean": clean,
                  "bytes": args.model.stat().st_size, "litert_path": str(litert_path),
                  "litert_bytes": litert_path.stat().st_size},
        "data": {"source": source, "files": args.files, "sample_rates": rates, "audio_seconds": audio_s,
                 "windows": n_windows, "silent_files": silent, "label_agreement": accuracy},
        "batch_size": args.batch_size,
        "repeat": args.repeat,
        "cli": {
            "command": shlex.join(command) + " <files>",
            "one_file": {k: v for k, v in one.items() if k != "lines"},
            "all_files": {k: v for k, v in many.items() if k != "lines"},
            "startup_s": one["wall_s"],
            "runs_spread_s": spread,
            "per_file_s": per_file_cli,
            "files_per_s": 1 / per_file_cli if per_file_cli else None,
        },
        "cli_litert": {
            "command": shlex.join(litert_command) + " <files>",
            "windows_per_call": lite_batch,
            "one_file": {k: v for k, v in litert_one.items() if k != "lines"},
            "all_files": {k: v for k, v in litert_many.items() if k != "lines"},
            "startup_s": litert_one["wall_s"],
            "runs_spread_s": litert_cli["spread_s"],
            "per_file_s": litert_cli["per_file_s"],
            "files_per_s": 1 / litert_cli["per_file_s"] if litert_cli["per_file_s"] else None,
            "peak_rss_mb": litert_peak_mb,
        },
        "in_process": {
            "model_load_s": load_s,
            "peak_rss_mib": self_rss,
            "read_cut_only": {"wall_s": t_cut, "runs_wall_s": cut_runs, "files_per_s": args.files / t_cut},
            "classic_predict_per_file": {"wall_s": t_classic, "runs_wall_s": classic_runs,
                                         "files_per_s": args.files / t_classic},
            "batched_classify_files": {"wall_s": t_batched, "runs_wall_s": batched_runs,
                                       "files_per_s": args.files / t_batched},
            "batched_model_predict": {"wall_s": t_plain, "runs_wall_s": plain_runs,
                                      "files_per_s": args.files / t_plain},
            "batched_classify_files_litert": {"wall_s": t_lite, "runs_wall_s": lite_runs,
                                              "files_per_s": args.files / t_lite, "windows_per_call": lite_batch},
        },
        "targets": {
            "per_file_speedup": per_file_ratio,
            "per_file_target": TARGET_PER_FILE,
            "per_file_met": per_file_ratio is not None and per_file_ratio >= TARGET_PER_FILE,
            "batched_speedup": batched_ratio,
            "batched_plain_speedup": plain_ratio,
            "batched_target": TARGET_BATCHED,
            "batched_met": batched_ratio >= TARGET_BATCHED,
            "litert_startup_s": litert_one["wall_s"],
            "litert_startup_target_s": TARGET_LITERT_STARTUP_S,
            "litert_startup_share_of_keras": startup_share,
            "litert_startup_share_target": TARGET_LITERT_STARTUP_SHARE,
            "litert_peak_rss_mb": litert_peak_mb,
            "litert_peak_rss_target_mb": TARGET_LITERT_PEAK_MB,
            "litert_max_abs_diff": runtimes["max_abs_diff"],
            "litert_met": (litert_one["wall_s"] <= TARGET_LITERT_STARTUP_S and startup_share <= TARGET_LITERT_STARTUP_SHARE
                           and litert_peak_mb <= TARGET_LITERT_PEAK_MB and runtimes["same"]),
        },
        "same_predictions": {"tolerance": TOLERANCE, "classic_vs_batched": same,
                             "plain_vs_batched": same_plain, "cli_vs_batched": same_cli,
                             "litert_vs_keras_cli": runtimes, "litert_vs_keras_batched": same_lite},
    }
    write_json(args.out, report)
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
