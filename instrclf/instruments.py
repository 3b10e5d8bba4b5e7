"""Facts about TinySOL's instruments shared by every data source: ranges, programs, families, folds, dynamics, pitch names.

The metadata file's schema (columns, required ones, the library column) is :mod:`instrclf.layout`'s.
"""

from dataclasses import dataclass

#: TinySOL's official cross-validation folds are 0 .. N_FOLDS - 1.
N_FOLDS = 5

#: TinySOL's four families.
FAMILIES = ("Brass", "Keyboards", "Strings", "Winds")

#: TinySOL's dynamics and their IDs.
DYNAMICS_ID = {"pp": 0, "p": 1, "mf": 2, "f": 3, "ff": 4}

_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class Instrument:
    """One TinySOL instrument.

    Attributes
    ----------
    folder : str      Family/Instrument folder, e.g. ``"Winds/Flute"``.
    abbr : str        File-name abbreviation, e.g. ``"Fl"``.
    name : str        Full name as in the metadata CSV.
    files : int       Number of notes in TinySOL.
    low, high : int   MIDI range (inclusive).
    program : int     General MIDI program, 0-based.
    strings : tuple   Open-string MIDI pitches (string 1 = highest), empty for non-strings.
    vibrato : bool    Whether the instrument is normally played with vibrato.
    """

    folder: str
    abbr: str
    name: str
    files: int
    low: int
    high: int
    program: int
    strings: tuple = ()
    vibrato: bool = False

    @property
    def family(self) -> str:
        return self.folder.split("/")[0]


INSTRUMENTS = (
    Instrument("Brass/Bass_Tuba", "BTb", "Bass Tuba", 108, 30, 65, 58),
    Instrument("Brass/Horn", "Hn", "Horn", 134, 31, 77, 60),
    Instrument("Brass/Trombone", "Tbn", "Trombone", 117, 34, 72, 57),
    Instrument("Brass/Trumpet_C", "TpC", "Trumpet in C", 96, 54, 86, 56),
    Instrument("Keyboards/Accordion", "Acc", "Accordion", 689, 28, 109, 21),
    Instrument("Strings/Contrabass", "Cb", "Contrabass", 309, 28, 72, 43, (43, 38, 33, 28), True),
    Instrument("Strings/Viola", "Va", "Viola", 309, 48, 96, 41, (69, 62, 55, 48), True),
    Instrument("Strings/Violin", "Vn", "Violin", 284, 55, 100, 40, (76, 69, 62, 55), True),
    Instrument("Strings/Violoncello", "Vc", "Violoncello", 291, 36, 84, 42, (57, 50, 43, 36), True),
    Instrument("Winds/Bassoon", "Bn", "Bassoon", 126, 34, 75, 70),
    Instrument("Winds/Clarinet_Bb", "ClBb", "Clarinet in Bb", 126, 50, 91, 71),
    Instrument("Winds/Flute", "Fl", "Flute", 118, 59, 98, 73, (), True),
    Instrument("Winds/Oboe", "Ob", "Oboe", 107, 58, 93, 68, (), True),
    Instrument("Winds/Sax_Alto", "ASax", "Alto Saxophone", 99, 49, 81, 65, (), True),
)

BY_ABBR = {inst.abbr: inst for inst in INSTRUMENTS}


def pitch_name(midi: int) -> str:
    """Scientific pitch name of a MIDI note number, TinySOL style (``60 -> "C4"``, ``61 -> "C#4"``)."""
    return f"{_PITCH_CLASSES[midi % 12]}{midi // 12 - 1}"
