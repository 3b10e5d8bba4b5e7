"""Matplotlib on the Agg backend, and figures saved atomically as PNG (shared by the clean and plot stages)."""

from .io import atomic_file


def pyplot():
    """Matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, *, dpi=100) -> None:
    """Save a figure as PNG atomically and close it."""
    plt = pyplot()
    try:
        with atomic_file(path, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi)
    finally:
        plt.close(fig)
