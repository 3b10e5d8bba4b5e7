"""How fast is the clean step? Seconds of audio per second of wall time, ours vs the classic recipe.

Ours: :func:`instrclf.clean.run` on all cores (read, mono, soxr resample, envelope
threshold, windows, 16-bit shard arrays, index.csv). The classic per-file recipe of
the audio-classification notebooks, serially, on the same files: ``librosa.load(sr=16000)``,
``pandas.Series(abs(y)).rolling(int(sr/20), min_periods=1, center=True).max() > threshold``,
then cutting windows (it writes nothing, so the comparison flatters it). A third line
runs our :func:`instrclf.audio.prepare` the same way (serial, no writes): like for like.
On a shared machine the wall figures move with the other load; CPU-seconds (this process
and its workers) are printed beside them.

    python benchmarks/clean_speed.py --raw data/raw [--limit N]
    python benchmarks/clean_speed.py --raw /tmp/synth_raw --synthetic 300   # make a set first
"""

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from instrclf import clean, layout, settings
from instrclf.audio import db_to_amplitude, prepare
from instrclf.audio import load as load_audio
from instrclf.settings import CleanSettings
from instrclf.instruments import INSTRUMENTS, pitch_name

ROOT = Path(__file__).resolve().parents[1]


def _cpu():
    """CPU seconds used so far by this process and its finished children (the workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def make_synthetic(raw, *, n_files, seed=0):
    """Write a TinySOL-shaped raw set of ``n_files`` notes (2-3 s, 44.1 kHz, 16-bit mono) under ``raw``."""
    rng = np.random.default_rng(seed)
    sr = 44100
    rows = []
    for i in range(n_files):
        inst = INSTRUMENTS[i % len(INSTRUMENTS)]
        midi = int(rng.integers(inst.low, inst.high + 1))
        seconds = rng.uniform(2.0, 3.0)
        n = round(seconds * sr)
        t = np.arange(n) / sr
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6) if f0 * k < sr / 2)
        onset = round(rng.uniform(0.0, 0.3) * sr)
        y = 0.3 * y * np.exp(-t / rng.uniform(0.5, 2.0)) * (t * sr >= onset) + 3e-5 * rng.standard_normal(n)
        path = f"{inst.folder}/ordinario/{inst.abbr}-ord-{pitch_name(midi)}-mf-N-{i:04d}.wav"
        (raw / "audio" / path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(raw / "audio" / path, y, sr, subtype="PCM_16")
        rows.append({"Path": path, "Fold": i % 5, "Family": inst.family, "Instrument (abbr.)": inst.abbr})
    layout.write_metadata(raw, rows)


def subset(raw, limit, work):
    """A raw folder holding every ``len/limit``-th note of ``raw`` (the audio folder is linked)."""
    df = pd.read_csv(raw / layout.METADATA_FILE, dtype=str, keep_default_na=False).sort_values("Path")
    if limit is None or limit >= len(df):
        return raw
    picked = df.iloc[np.linspace(0, len(df) - 1, limit).round().astype(int)]
    sub = work / "raw"
    sub.mkdir()
    (sub / "audio").symlink_to((raw / "audio").resolve(), target_is_directory=True)
    picked.to_csv(sub / layout.METADATA_FILE, index=False)
    return sub


def classic(paths, *, sample_rate, delta_time, threshold_db):
    """The notebooks' recipe, one file after another; returns the number of windows."""
    import librosa

    threshold = db_to_amplitude(threshold_db)
    n = round(sample_rate * delta_time)
    count = 0
    for path in paths:
        y, sr = librosa.load(path, sr=sample_rate)
        mask = pd.Series(np.abs(y)).rolling(window=int(sr / 20), min_periods=1, center=True).max() > threshold
        y = y[mask.to_numpy()]
        if 0 < len(y) < n:
            y = np.pad(y, (0, n - len(y)))
        count += len([y[i : i + n] for i in range(0, len(y) - n + 1, n)])
    return count


def prepare_only(paths, *, config):
    """Our chain without writing, serially, like :func:`classic`; returns the number of windows."""
    count = 0
    for path in paths:
        y, sr = load_audio(path)
        count += len(prepare(y, sr, **config.model_dump()))
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, type=Path, help="raw layout: TinySOL_metadata.csv + audio/")
    parser.add_argument("--limit", type=int, help="use this many notes, spread over the sorted Paths")
    parser.add_argument("--params", default=ROOT / "params.yaml", help="clean.* values (default: the repo's)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), help="worker processes for ours")
    parser.add_argument("--synthetic", type=int, metavar="N", help="first write N synthetic notes into --raw")
    parser.add_argument("--work", default="/var/tmp" if os.path.isdir("/var/tmp") else None,
                        help="where the windows are written and removed (default /var/tmp: on the project's "
                             "machines /tmp creates files ~20x slower than the disk the pipeline writes to)")
    args = parser.parse_args()

    if args.synthetic:
        if (args.raw / layout.METADATA_FILE).exists():
            raise SystemExit(f"{args.raw} already holds a raw set; not overwriting it")
        make_synthetic(args.raw, n_files=args.synthetic)
    config = settings.section(settings.load(args.params), CleanSettings)
    with tempfile.TemporaryDirectory(prefix="clean_speed.", dir=args.work) as work:
        work = Path(work)
        raw = subset(args.raw, args.limit, work)

        start, cpu = time.perf_counter(), _cpu()
        metrics = clean.run(raw, work / "clean", clean=config, target="instrument", jobs=args.jobs, progress=False)
        ours, ours_cpu = time.perf_counter() - start, _cpu() - cpu

        paths = [raw / "audio" / p for p in pd.read_csv(raw / layout.METADATA_FILE, dtype=str)["Path"]]
        classic(paths[:1], sample_rate=config.sample_rate, delta_time=config.delta_time,
                threshold_db=config.threshold_db)  # warm-up: librosa's lazy imports are not the recipe's cost
        start, cpu = time.perf_counter(), _cpu()
        windows = classic(paths, sample_rate=config.sample_rate, delta_time=config.delta_time,
                          threshold_db=config.threshold_db)
        theirs, theirs_cpu = time.perf_counter() - start, _cpu() - cpu

        start, cpu = time.perf_counter(), _cpu()
        serial_windows = prepare_only(paths, config=config)
        serial, serial_cpu = time.perf_counter() - start, _cpu() - cpu

    audio_s = metrics["seconds_in"]
    print(f"data: {args.raw} ({metrics['files_read']} files, {audio_s:.1f} s of audio), windows written under "
          f"{args.work or tempfile.gettempdir()}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"ours    (clean.run, {args.jobs} jobs, writes WAVs):           {ours:6.2f} s wall "
          f"{audio_s / ours:6.0f}x real time | {ours_cpu:6.2f} CPU-s {audio_s / ours_cpu:6.0f}x per core"
          f" | {metrics['windows_written']} windows")
    print(f"classic (librosa + pandas rolling, serial, no writes): {theirs:6.2f} s wall "
          f"{audio_s / theirs:6.0f}x real time | {theirs_cpu:6.2f} CPU-s {audio_s / theirs_cpu:6.0f}x per core"
          f" | {windows} windows")
    print(f"ours    (audio.prepare only, serial, no writes):       {serial:6.2f} s wall "
          f"{audio_s / serial:6.0f}x real time | {serial_cpu:6.2f} CPU-s {audio_s / serial_cpu:6.0f}x per core"
          f" | {serial_windows} windows")
    print(f"speed-up over classic (wall): clean.run {theirs / ours:.1f}x, prepare alone {theirs / serial:.1f}x")


if __name__ == "__main__":
    main()
