"""What a benchmark records about the machine it ran on: the CPU model and package versions."""

import platform
from importlib import metadata


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what :mod:`platform` knows elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(package):
    """An installed package's version, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
