"""Do the SoundFont libraries share samples? Which can be held out as a never-seen library?

For every pair of libraries, on the 14 TinySOL instruments (General MIDI bank 0):

1. Sample level. The SoundFont is parsed with the standard library + numpy (RIFF ``sdta/smpl``
   16-bit PCM, ``pdta`` preset -> instrument -> sample walk, ``shdr`` headers; SF3 samples are
   Ogg Vorbis streams, decoded with soundfile). A sample is *exactly* shared if its PCM hash
   occurs in the other library (SF2 only: SF3 is lossy), *near* shared if its max |normalised
   cross-correlation| (22.05 kHz, first 0.5 s after the attack, up to 0.1 s lag) with a sample of
   the same program or a root key within 2 semitones in the other library is >= ``--near``
   (>= 0.99 when the window is under 93 ms: TimGM6mb's loops are 10-50 ms and match by chance).
2. Rendered-note level. Each program plays 5 keys across its range (velocity 80, 1 s held, no
   effects, tinysoundfont mono mix); per pair the onset-aligned max waveform NCC (0.5 s,
   +-20 ms lag) and the correlation of Welch log-spectra (50 Hz - 10 kHz), median over keys
   and then instruments. A library against itself is the calibration (must be 1).
3. Silent keys (peak < -90 dBFS over 1 s) over every key of each instrument's range, presets
   missing from bank 0, programs of one library that play the same samples, load time and
   render speed (x real time, one core; noisy on a shared machine).

Verdict: a pair shares samples if >= 20 % of either side's samples are near shared or the
median rendered waveform NCC is >= 0.8 (independent pairs measure 0.1-0.35, derived 0.92-1).

    python benchmarks/library_overlap.py --out /tmp/library_overlap.json
    python benchmarks/library_overlap.py --lib Tim=/path/TimGM6mb.sf2 --lib Fluid=/path/FluidR3_GM.sf2 --out o.json

Gravis (GUS) patch sets are libraries too: give their TiMidity++ config (``.cfg``, e.g.
``--lib freepats=/etc/timidity/freepats.cfg``). Their ``.pat`` files are parsed here (8/16-bit,
signed/unsigned PCM, root frequency -> root key) and their notes rendered by ``timidity``
(instrclf.sources.soundfont.timidity), with the same comparisons.
"""

import argparse
import hashlib
import importlib.util
import io
import json
import struct
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import soundfile as sf
import tinysoundfont
from scipy.signal import fftconvolve, resample_poly, welch

SR = 44100
# abbr: (General MIDI program 0-based, lowest key, highest key)
INSTRUMENTS = {
    "Acc": (21, 36, 96), "ASax": (65, 49, 81), "Bn": (70, 34, 75), "ClBb": (71, 50, 91),
    "Fl": (73, 59, 98), "Ob": (68, 58, 93), "Hn": (60, 34, 77), "Tbn": (57, 34, 72),
    "TpC": (56, 54, 86), "BTb": (58, 28, 65), "Vn": (40, 55, 100), "Va": (41, 48, 91),
    "Vc": (42, 36, 84), "Cb": (43, 28, 67),
}
SILENT_DBFS = -90.0


def default_libraries():
    """Name -> path of the libraries examined by default (those present on this machine)."""
    tim = Path(importlib.util.find_spec("pretty_midi").submodule_search_locations[0]) / "TimGM6mb.sf2"
    libs = {
        "TimGM6mb": tim,
        "FluidR3_GM": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
        "sf_GMbank": Path("/usr/share/sounds/sf2/sf_GMbank.sf2"),
        "MuseScore_Lite": Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
        # optional Debian packages: timgm6mb-soundfont, fluidr3mono-gm-soundfont, opl3-soundfont
        "TimGM6mb_deb": Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
        "FluidR3Mono": Path("/usr/share/sounds/sf3/FluidR3Mono_GM.sf3"),
        "OPL3_FM": Path("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2"),
    }
    return {k: v for k, v in libs.items() if v.exists()}


def system_fonts():
    """Every .sf2/.sf3 under /usr/share/sounds with what it resolves to (symlinks) and its size in MB."""
    return [{"path": str(p), "symlink": p.is_symlink(), "resolves_to": str(p.resolve()),
             "mb": round(p.resolve().stat().st_size / 1e6, 1) if p.exists() else None}
            for p in sorted(Path("/usr/share/sounds").glob("sf[23]/*"))]


def _chunks(buf, off, end):
    """Yield (id, data offset, size) of RIFF chunks in ``buf[off:end]``; tolerates a missing pad byte."""
    while off + 8 <= end:
        cid, size = struct.unpack_from("<4sI", buf, off)
        yield cid.decode("latin1"), off + 8, size
        nxt = off + 8 + size
        if size & 1 and nxt < end and buf[nxt] == 0:  # pad byte (zero); some SF3 writers omit it
            nxt += 1
        off = nxt


def read_font(path):
    """Parse a .sf2/.sf3: INFO strings, sample headers, and bank-0 program -> sample indices."""
    buf = memoryview(Path(path).read_bytes())
    if bytes(buf[:4]) != b"RIFF" or bytes(buf[8:12]) != b"sfbk":
        raise ValueError(f"{path}: not a SoundFont")
    sub = {}
    for cid, o, n in _chunks(buf, 12, len(buf)):
        if cid == "LIST":
            kind = bytes(buf[o:o + 4]).decode("latin1")
            for sid, so, sn in _chunks(buf, o + 4, o + n):
                sub[(kind, sid)] = buf[so:so + sn]
    info = {k[1]: bytes(v).split(b"\0")[0].decode("utf-8", "replace") for k, v in sub.items()
            if k[0] == "INFO" and k[1] != "ifil"}

    def records(name, fmt):
        data = sub[("pdta", name)]
        return list(struct.iter_unpack(fmt, data[: len(data) // struct.calcsize(fmt) * struct.calcsize(fmt)]))

    phdr, pbag, pgen = records("phdr", "<20sHHHIII"), records("pbag", "<HH"), records("pgen", "<HH")
    inst, ibag, igen = records("inst", "<20sH"), records("ibag", "<HH"), records("igen", "<HH")
    shdr = records("shdr", "<20sIIIIIBbHH")[:-1]  # last record is the terminal EOS

    def zones(bags, gens, first, last):
        """Generator dicts of bags[first:last], each merged over the global (first, target-less) zone."""
        out = [{gens[g][0]: gens[g][1] for g in range(bags[b][0], bags[b + 1][0])} for b in range(first, last)]
        glob = out.pop(0) if out and not ({41, 53} & set(out[0])) else {}
        return [{**glob, **z} for z in out]

    programs = {}
    for i, (_, preset, bank, bag, *_r) in enumerate(phdr[:-1]):
        if bank == 0:  # -> {sample index: set of root keys it plays at}; 41 = instrument, 53 = sampleID, 58 = root key
            insts = [z[41] for z in zones(pbag, pgen, bag, phdr[i + 1][3]) if 41 in z]
            programs[preset] = {}
            for z in (z for j in insts for z in zones(ibag, igen, inst[j][1], inst[j + 1][1]) if 53 in z):
                root = z.get(58, 0xFFFF)  # -1 (unset) reads as 0xFFFF: use the sample header's key
                programs[preset].setdefault(z[53], set()).add(root if root < 128 else min(shdr[z[53]][6], 127))
    samples = [{"name": h[0].split(b"\0")[0].decode("latin1"), "start": h[1], "end": h[2], "rate": h[5],
                "root": h[6], "type": h[9]} for h in shdr]
    return {"info": info, "programs": programs, "samples": samples, "smpl": sub[("sdta", "smpl")]}


def read_gus(cfg):
    """Parse the bank-0 Gravis patches of a TiMidity++ config into :func:`read_font`'s form (PCM kept per sample)."""
    from instrclf.sources.soundfont import timidity

    cfg = Path(cfg)
    folder, section, samples, pcm, programs, size, seen = cfg.parent, "bank 0", [], [], {}, 0, set()
    for line in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "dir":
            folder = Path(words[1])
        elif words[0] in ("bank", "drumset"):
            section = " ".join(words[:2])
        elif words[0].isdigit() and section == "bank 0" and len(words) > 1:
            path = Path(words[1]) if Path(words[1]).is_absolute() else folder / words[1]
            if path.suffix != ".pat":
                path = path.with_name(path.name + ".pat")
            programs[int(words[0])] = {}
            size += path.stat().st_size if path not in seen else 0
            seen.add(path)
            for rate, root, raw, x in _gus_samples(path):
                programs[int(words[0])][len(samples)] = {root}
                samples.append({"name": path.stem, "rate": rate, "root": root, "type": 0})
                pcm.append((x, raw))
    assert set(programs) == set(timidity.programs(cfg)), "the bank-0 programs must be what the renderer sees"
    return {"info": {"cfg": str(cfg)}, "programs": programs, "samples": samples, "pcm": pcm, "bytes": size}


def _gus_samples(path):
    """``(rate, root key, raw bytes, float32 PCM)`` of every sample of a GF1 patch (first instrument and layer)."""
    buf = Path(path).read_bytes()
    if not buf.startswith(b"GF1PATCH"):
        raise ValueError(f"{path}: not a Gravis patch")
    n_samples, off = buf[129 + 63 + 6], 129 + 63 + 47  # header, instrument header, layer header
    for _ in range(n_samples):
        size, _ls, _le, rate, _lo, _hi, root_mhz = struct.unpack_from("<IIIHIII", buf, off + 8)
        modes = buf[off + 55]
        raw = buf[off + 96: off + 96 + size]
        off += 96 + size
        dtype = ("<u2" if modes & 2 else "<i2") if modes & 1 else ("u1" if modes & 2 else "i1")
        x = np.frombuffer(raw[: len(raw) // np.dtype(dtype).itemsize * np.dtype(dtype).itemsize], dtype).astype(np.float32)
        bits = 16 if modes & 1 else 8
        x = (x - 2 ** (bits - 1) if modes & 2 else x) / 2 ** (bits - 1)
        root = int(round(69 + 12 * np.log2(max(root_mhz, 1) / 1000 / 440)))
        yield rate, min(max(root, 0), 127), raw, x


def sample_pcm(font, i):
    """Sample ``i`` as (float32 PCM, raw bytes or None if lossy): SF2 16-bit, SF3 Ogg Vorbis decoded, GUS as parsed."""
    if "pcm" in font:
        return font["pcm"][i]
    s, smpl = font["samples"][i], font["smpl"]
    if s["type"] & 0x8000 or s["end"] <= s["start"]:  # ROM sample / empty
        return np.zeros(0, np.float32), None
    if s["type"] & 0x10:  # SF3: start/end are byte offsets of an Ogg stream
        x, _ = sf.read(io.BytesIO(bytes(smpl[s["start"]:s["end"]])), dtype="float32", always_2d=True)
        return x[:, 0], None
    raw = bytes(smpl[2 * s["start"]:2 * s["end"]])
    return np.frombuffer(raw, "<i2").astype(np.float32) / 32768, raw


def ncc_max(a, b):
    """Max |normalised cross-correlation| of ``a`` slid over the longer ``b`` (valid positions only)."""
    if len(a) > len(b):
        a, b = b, a
    num = fftconvolve(b, a[::-1], mode="valid")
    c = np.concatenate([[0.0], np.cumsum(b * b)])
    energy = c[len(a):] - c[: len(c) - len(a)]  # energy of every len(a) window of b
    den = np.sqrt(np.maximum(energy, 1e-12) * max(np.sum(a * a), 1e-12))
    return float(np.max(np.abs(num) / den))


def attack(x, rel_db=-30.0):
    """Index of the first sample within ``rel_db`` of the peak."""
    peak = np.max(np.abs(x)) if len(x) else 0.0
    return int(np.argmax(np.abs(x) >= peak * 10 ** (rel_db / 20))) if peak > 0 else 0


def fingerprints(font):
    """Per sample of the 14 programs: root key, exact-hash and 22.05 kHz excerpt from the attack."""
    wanted = {}
    for p, _, _ in INSTRUMENTS.values():
        for i, roots in font["programs"].get(p, {}).items():
            wanted.setdefault(i, set()).update(roots)
    out = {}
    for i, roots in sorted(wanted.items()):
        s = font["samples"][i]
        x, raw = sample_pcm(font, i)
        y = resample_poly(x, 22050, s["rate"]) if s["rate"] != 22050 else x
        y = y[attack(y):][:13230].astype(np.float64)  # 0.5 s + 0.1 s of lag room
        if len(y) >= 256 and np.any(y):  # TimGM6mb loops are often < 50 ms
            out[i] = {"roots": roots, "hash": hashlib.sha1(raw).hexdigest() if raw else None, "x": y}
    return out


def all_hashes(font):
    """SHA-1 of every 16-bit sample's PCM in the library (none for SF3, whose samples are lossy)."""
    raws = (sample_pcm(font, i)[1] for i in range(len(font["samples"])))
    return {hashlib.sha1(r).hexdigest() for r in raws if r}


def sample_overlap(font_a, fp_a, font_b, fp_b, hashes_b, near):
    """Per instrument: how many of A's samples occur exactly / nearly (|NCC| >= near) in B."""
    res = {}
    for abbr, (prog, _, _) in INSTRUMENTS.items():
        ids = [i for i in font_a["programs"].get(prog, []) if i in fp_a]
        same_prog = set(font_b["programs"].get(prog, {}))
        best, hits = [], 0
        for i in ids:
            x, x_roots = fp_a[i]["x"], fp_a[i]["roots"]
            scores = [(max(ncc_max(x[:11025], f["x"]), ncc_max(f["x"][:11025], x)), min(len(x), len(f["x"]), 11025))
                      for j, f in fp_b.items() if j in same_prog or min(abs(r - q) for r in f["roots"] for q in x_roots) <= 2]
            best.append(max((s for s, _ in scores), default=0.0))
            # a window under 2048 frames (93 ms) can match by chance: demand 0.99 there
            hits += any(s >= (near if n >= 2048 else max(near, 0.99)) for s, n in scores)
        exact = sum(fp_a[i]["hash"] in hashes_b for i in ids if fp_a[i]["hash"])
        res[abbr] = {"samples": len(ids), "exact": exact, "near": hits,
                     "median_best_ncc": round(float(np.median(best)), 3) if best else None}
    return res


def render(synth, sfid, program, key, seconds=1.0, velocity=80):
    """One note held ``seconds`` (no release), mono float32; the synth is left silent."""
    synth.program_select(0, sfid, 0, program)
    synth.noteon(0, key, velocity)
    x = np.frombuffer(synth.generate(round(seconds * SR)), dtype=np.float32).reshape(-1, 2).mean(axis=1)
    synth.noteoff(0, key)
    synth.sounds_off()
    for _ in range(64):  # let the voices fade out so the next note starts clean
        if not np.any(np.frombuffer(synth.generate(1024), dtype=np.float32)):
            break
    return x


def scan_library(path):
    """Load one library: load time, every key's peak, renders of 5 keys spread over each range, speed."""
    t0 = time.perf_counter()
    if Path(path).suffix == ".cfg":  # Gravis patches, rendered by timidity
        from instrclf.sources.soundfont import timidity

        synth, sfid = None, None

        def render(_synth, _sfid, program, key, seconds=1.0, velocity=80):  # noqa: F811 (this library's renderer)
            return timidity.synthesize(path, program=program, midi=key, velocity=velocity, detune_cents=0.0,
                                       on_frames=round(seconds * SR), off_frames=0, sample_rate=SR)
    else:
        synth = tinysoundfont.Synth(samplerate=SR)
        sfid = synth.sfload(str(path))
        render = globals()["render"]
    load_s = time.perf_counter() - t0
    peaks, renders, audio_s, t0 = {}, {}, 0.0, time.perf_counter()
    for abbr, (prog, low, high) in INSTRUMENTS.items():
        peaks[abbr], compare = {}, {round(k) for k in np.linspace(low + 2, high - 2, 5)}
        for key in range(low, high + 1):
            x = render(synth, sfid, prog, key)
            audio_s += len(x) / SR
            peaks[abbr][key] = float(20 * np.log10(max(np.max(np.abs(x)), 1e-12)))
            if key in compare:
                renders[(abbr, key)] = x.astype(np.float64)
    return {"load_s": load_s, "render_x_realtime": audio_s / (time.perf_counter() - t0), "peaks": peaks, "renders": renders}


def note_similarity(x, y):
    """(max waveform NCC after aligning attacks, log-spectrum correlation) of two renders."""
    lag, n = round(0.02 * SR), round(0.5 * SR)
    ox, oy = attack(x), attack(y)
    a = x[ox:ox + n]
    b = y[max(oy - lag, 0):oy + n + lag]
    wave = ncc_max(a, b) if min(len(a), len(b)) > 1024 else float("nan")
    f, px = welch(x, SR, nperseg=4096)
    _, py = welch(y, SR, nperseg=4096)
    band = (f >= 50) & (f <= 10000)
    spec = np.corrcoef(10 * np.log10(px[band] + 1e-20), 10 * np.log10(py[band] + 1e-20))[0, 1]
    return wave, float(spec)


def render_overlap(sa, sb):
    """Per instrument: median waveform NCC and log-spectrum correlation over the audible comparison keys."""
    res = {}
    for abbr in INSTRUMENTS:
        sims = [note_similarity(sa["renders"][k], sb["renders"][k]) for k in sa["renders"] if k[0] == abbr
                and sa["peaks"][abbr][k[1]] > SILENT_DBFS and sb["peaks"][abbr][k[1]] > SILENT_DBFS]
        res[abbr] = {"keys": len(sims), "wave_ncc": round(float(np.median([s[0] for s in sims])), 3) if sims else None,
                     "logspec_corr": round(float(np.median([s[1] for s in sims])), 3) if sims else None}
    return res


def median_of(per_inst, key):
    """Median of a per-instrument figure over the instruments where it exists."""
    vals = [v[key] for v in per_inst.values() if v[key] is not None]
    return round(float(np.median(vals)), 3) if vals else None


def describe_library(name, path):
    """Parse, fingerprint and scan one library; return (report entry, font, fingerprints, hashes, scan)."""
    t0 = time.perf_counter()
    font = read_gus(path) if Path(path).suffix == ".cfg" else read_font(path)
    fp, hashes = fingerprints(font), all_hashes(font)
    parse_s, sc = time.perf_counter() - t0, scan_library(path)
    progs = {a: set(font["programs"].get(p, {})) for a, (p, _, _) in INSTRUMENTS.items()}
    entry = {
        "path": str(path), "resolves_to": str(path.resolve()), "mb": round(font.get("bytes", path.stat().st_size) / 1e6, 1),
        "info": {k: v[:300] for k, v in font["info"].items()},
        "samples_total": len(font["samples"]), "samples_14_programs": len(fp),
        "missing_programs": [a for a, (p, _, _) in INSTRUMENTS.items() if p not in font["programs"]],
        "programs_sharing_samples": [f"{a}={b}" for a, b in combinations(INSTRUMENTS, 2) if progs[a] & progs[b]],
        "silent_keys": {a: v for a in INSTRUMENTS if (v := [k for k, p in sc["peaks"][a].items() if p < SILENT_DBFS])},
        "load_s": round(sc["load_s"], 3), "parse_and_fingerprint_s": round(parse_s, 2),
        "render_x_realtime": round(sc["render_x_realtime"], 1),
        "calibration_self": {k: median_of(render_overlap(sc, sc), k) for k in ("wave_ncc", "logspec_corr")}}
    print(f"loaded {name}: {entry['mb']} MB, {len(fp)} samples in the 14 programs", flush=True)
    return entry, font, fp, hashes, sc


def compare_pair(a, b, near):
    """Sample- and render-level overlap of two libraries, each given as (font, fingerprints, hashes, scan)."""
    ab, ba = sample_overlap(a[0], a[1], b[0], b[1], b[2], near), sample_overlap(b[0], b[1], a[0], a[1], a[2], near)
    rend = render_overlap(a[3], b[3])
    def tot(d, k):
        return sum(v[k] for v in d.values())

    frac = max(tot(ab, "near") / max(tot(ab, "samples"), 1), tot(ba, "near") / max(tot(ba, "samples"), 1))
    per = {i: {"a_in_b": ab[i], "b_in_a": ba[i], "render": rend[i],
               "shared": bool(max(ab[i]["near"] / max(ab[i]["samples"], 1), ba[i]["near"] / max(ba[i]["samples"], 1)) >= 0.5
                              or (rend[i]["wave_ncc"] or 0) >= 0.8)} for i in INSTRUMENTS}
    wave = median_of(rend, "wave_ncc")
    return {"samples_a": tot(ab, "samples"), "exact_a_in_b": tot(ab, "exact"), "near_a_in_b": tot(ab, "near"),
            "samples_b": tot(ba, "samples"), "exact_b_in_a": tot(ba, "exact"), "near_b_in_a": tot(ba, "near"),
            "near_fraction": round(frac, 3), "wave_ncc": wave, "logspec_corr": median_of(rend, "logspec_corr"),
            "shares_samples": bool(frac >= 0.2 or (wave or 0) >= 0.8),
            "instruments_shared": [i for i in INSTRUMENTS if per[i]["shared"]], "per_instrument": per}


def print_report(report):
    """Library table, pair table, and per-instrument rendered waveform NCC (* = instrument shared)."""
    print(f"\n{'library':16}{'MB':>7}{'load s':>8}{'x realtime':>11}{'self NCC':>9}  missing / silent keys")
    for n, r in report["libraries"].items():
        print(f"{n:16}{r['mb']:7.1f}{r['load_s']:8.3f}{r['render_x_realtime']:11.0f}"
              f"{r['calibration_self']['wave_ncc']:9.3f}  {r['missing_programs'] or '-'} / {r['silent_keys'] or '-'}")
        print(f"{'':16}programs playing the same samples: {', '.join(r['programs_sharing_samples']) or '-'}")
    print(f"\n{'pair':32}{'exact A>B':>10}{'near A>B':>10}{'near B>A':>10}{'wave NCC':>9}{'logspec':>8}  verdict")
    for p, r in report["pairs"].items():
        print(f"{p:32}{r['exact_a_in_b']:>5}/{r['samples_a']:<4}{r['near_a_in_b']:>5}/{r['samples_a']:<4}"
              f"{r['near_b_in_a']:>5}/{r['samples_b']:<4}{r['wave_ncc']:9.3f}{r['logspec_corr']:8.3f}  "
              + ("SHARES SAMPLES" if r["shares_samples"] else "independent"))
    print("\nper-instrument rendered waveform NCC (median over keys; * = shares samples):")
    print(f"{'pair':32}" + "".join(f"{a:>7}" for a in INSTRUMENTS))
    for p, r in report["pairs"].items():
        cells = [(r["per_instrument"][a]["render"]["wave_ncc"], r["per_instrument"][a]["shared"]) for a in INSTRUMENTS]
        print(f"{p:32}" + "".join(f"{c:6.2f}" + ("*" if s else " ") if c is not None else f"{'-':>7}" for c, s in cells))


def main(argv=None):
    """Parse arguments, examine every library and pair, print the tables and write the JSON report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", action="append", metavar="NAME=PATH", help="library to examine (repeatable); default: all known present")
    ap.add_argument("--near", type=float, default=0.9, help="|NCC| at which two samples count as the same recording")
    ap.add_argument("--out", type=Path, required=True, help="JSON report path")
    args = ap.parse_args(argv)
    libs = {k: Path(v) for k, v in (s.split("=", 1) for s in args.lib)} if args.lib else default_libraries()
    report, data = {"system_fonts": system_fonts(), "libraries": {}, "pairs": {}}, {}
    for name, path in libs.items():
        report["libraries"][name], *data[name] = describe_library(name, path)
    for a, b in combinations(libs, 2):
        report["pairs"][f"{a}|{b}"] = compare_pair(data[a], data[b], args.near)
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
