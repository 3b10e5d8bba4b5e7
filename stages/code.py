"""Stage ``code``: one fingerprint per stage script, hashing every project file the script runs.

Usage: python stages/code.py --out code

Every other stage depends on its fingerprint (``code/<script>.sha256``, or
``code/<script>-<model>.sha256`` for a script that builds models by name) rather than on a
hand-kept list of modules: an edited module reruns exactly the stages that import it.
"""

import argparse
from pathlib import Path

from instrclf import stage
from instrclf.fingerprint import fingerprints
from instrclf.io import atomic_dir

#: The params this stage reads: none (the fingerprints follow the code, not params.yaml).
PARAMS = ()


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line paths, exactly as dvc.yaml passes them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the folder of fingerprints, replaced only on success")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    """Fingerprint every stage script but this one; print one summary line."""
    args = parse_args(argv)

    def work() -> dict:
        found = fingerprints(Path(__file__).resolve().parents[1])
        with atomic_dir(args.out) as out:
            for name, text in found.items():
                (out / name).write_text(text, encoding="utf-8")
        return {"fingerprints": len(found), "files": len({line.split("  ", 1)[1] for t in found.values() for line in t.splitlines()})}

    stage.run("code", work)


if __name__ == "__main__":
    main()
