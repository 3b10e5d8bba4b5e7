"""Libraries of Gravis (GUS) patches, played by TiMidity++ from its config file (Debian's ``freepats``).

A library given as a TiMidity++ config (``.cfg``, e.g. ``/etc/timidity/freepats.cfg``) is
rendered note by note: each note becomes a one-track MIDI file (program change, a pitch
bend for the note's detune, note-on, note-off) that ``timidity`` renders to 16-bit mono PCM
with its effects (reverb, chorus) off, so the same note gives the same bytes every time. The
note's variation (vibrato, level, room, noise, tilt, body) is then applied by the same code as
for SoundFonts (:func:`..effects.finish`). A program the config does not map in bank 0 has no
notes: :func:`programs` says which it maps, and the renderer skips the rest (timidity would
play a piano in their place).
"""

import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np

from ...errors import DataError

#: File ending of a library given as a TiMidity++ config.
SUFFIX = ".cfg"

#: Pitch-bend range TiMidity++ assumes (General MIDI's default), in cents either way.
BEND_CENTS = 200.0

#: MIDI ticks per quarter note and the tempo (microseconds per quarter): 1 tick = 1 ms.
_TICKS, _TEMPO = 1000, 1_000_000

_PROGRAM_LINE = re.compile(r"^\s*(\d+)\s+\S+")


def programs(cfg) -> frozenset:
    """General MIDI programs (0-based) that a TiMidity++ config maps in melodic bank 0.

    Lines before any ``bank``/``drumset`` line, and those after ``bank 0``, count; drum sets
    and other banks do not. ``source`` lines are not followed.
    """
    found, section = set(), "bank 0"
    try:
        lines = Path(cfg).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DataError(f"{cfg}: cannot read this TiMidity++ config ({exc.strerror or exc})") from None
    for line in lines:
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] in ("bank", "drumset"):
            section = " ".join(words[:2])
            continue
        match = _PROGRAM_LINE.match(line)
        if match and section == "bank 0":
            found.add(int(match.group(1)))
    return frozenset(found)


def problem(cfg) -> str | None:
    """What is wrong with a config library (missing, no program, no ``timidity``), or None."""
    cfg = Path(cfg)
    if not cfg.is_file():
        return "is missing"
    try:
        if not programs(cfg):
            return "maps no program in bank 0 (not a TiMidity++ patch config)"
    except DataError as exc:
        return str(exc)
    if shutil.which("timidity") is None:
        return "needs the timidity program (apt-get install timidity)"
    return None


def _var(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_file(*, program: int, midi: int, velocity: int, detune_cents: float, on_ms: int, total_ms: int) -> bytes:
    """A one-track MIDI file playing one note on channel 0 (1 tick = 1 ms).

    Parameters
    ----------
    program : int
        General MIDI program, 0-based.
    midi, velocity : int
        Key and velocity.
    detune_cents : float
        Pitch bend, within +-:data:`BEND_CENTS`.
    on_ms, total_ms : int
        Note-off time and the end of the track.
    """
    bend = int(round(8192 + max(-1.0, min(1.0, detune_cents / BEND_CENTS)) * 8191))
    events = [
        (0, b"\xff\x51\x03" + _TEMPO.to_bytes(3, "big")),
        (0, bytes([0xC0, program])),
        (0, bytes([0xE0, bend & 0x7F, bend >> 7])),
        (0, bytes([0x90, midi, velocity])),
        (on_ms, bytes([0x80, midi, 0])),
        (total_ms - on_ms, b"\xff\x2f\x00"),
    ]
    track = b"".join(_var(delta) + event for delta, event in events)
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, _TICKS) + b"MTrk" + struct.pack(">I", len(track)) + track


def synthesize(cfg, *, program: int, midi: int, velocity: int, detune_cents: float, on_frames: int, off_frames: int, sample_rate: int) -> np.ndarray:
    """Play one note through ``timidity`` with config ``cfg``; mono float32 of ``on_frames + off_frames`` samples.

    All zeros when ``cfg`` maps no such program (see :func:`programs`).
    """
    n = on_frames + off_frames
    if program not in programs(cfg):
        return np.zeros(n, np.float32)
    on_ms = max(1, round(on_frames * 1000 / sample_rate))
    total_ms = on_ms + max(1, round(off_frames * 1000 / sample_rate))
    song = midi_file(program=program, midi=midi, velocity=velocity, detune_cents=detune_cents, on_ms=on_ms, total_ms=total_ms)
    cmd = [
        "timidity", "-c", str(cfg), "-s", str(sample_rate), "-Or1sl", "--output-mono", "-o", "-",
        "--reverb=d", "--chorus=d", "--no-anti-alias", "-EFresamp=L", "--quiet=2", "-",
    ]
    try:
        proc = subprocess.run(cmd, input=song, capture_output=True, timeout=120, check=False)
    except FileNotFoundError:
        raise DataError("timidity is not installed (apt-get install timidity): it renders the TiMidity++ library " + str(cfg)) from None
    if proc.returncode != 0:
        raise DataError(f"{cfg}: timidity failed on program {program} key {midi}: {proc.stderr.decode(errors='replace').strip()[-200:]}")
    y = np.frombuffer(proc.stdout[: len(proc.stdout) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    out = np.zeros(n, np.float32)
    out[: min(n, len(y))] = y[:n]
    return out
