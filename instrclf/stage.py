"""What every stage script shares: the exit style and the one-line summary.

A stage script parses its paths, reads params.yaml once, calls the package and ends in
``stage.run(name, work)``: a project error becomes ``error: <message>`` on stderr and
exit status 1 (no traceback), and the stage's figures are printed as one line,
``<stage>: key=value, key=value``.
"""

import sys

from .errors import InstrclfError


def summary(name: str, figures: dict) -> str:
    """The one-line summary of a stage: ``<name>: key=value, ...`` (floats to 4 significant digits)."""
    def fmt(value):
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return f"{name}: " + ", ".join(f"{key}={fmt(value)}" for key, value in figures.items())


def run(name: str, work) -> None:
    """Run ``work()`` (which returns the stage's flat figures) and print its summary.

    Parameters
    ----------
    name : str
        The stage's name as in dvc.yaml (``train@conv1d-0``...).
    work : callable
        Does the stage's work; returns a dict of figures to print.
    """
    try:
        figures = work()
    except InstrclfError as exc:
        print(f"error: {name}: {exc}", file=sys.stderr)
        sys.exit(1)
    print(summary(name, figures or {}))
