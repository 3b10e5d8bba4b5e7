"""Reading params.yaml and checking values, with errors that name the key."""

from pathlib import Path

import yaml

from .errors import ParameterError

_MISSING = object()


def load(path="params.yaml") -> dict:
    """Read a params file.

    Parameters
    ----------
    path : str or Path
        The YAML file, usually the repository's ``params.yaml``.

    Returns
    -------
    dict
        The parsed parameters.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            params = yaml.safe_load(f)
    except FileNotFoundError:
        raise ParameterError(f"params file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(params, dict):
        raise ParameterError(f"{path} must hold a mapping, got {type(params).__name__}")
    return params


def get(params: dict, key: str, default=_MISSING):
    """Value of a dotted key such as ``"clean.sample_rate"``; raise naming the key if absent."""
    value = params
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            if default is not _MISSING:
                return default
            raise ParameterError(f"params.yaml has no key {key!r}")
        value = value[part]
    return value


def choice(key: str, value, allowed):
    """Return ``value`` if it is one of ``allowed``, else raise naming ``key``."""
    if value not in allowed:
        raise ParameterError(f"{key} must be one of {sorted(allowed)}, got {value!r}")
    return value


def number(key: str, value, *, low=None, high=None, low_open=False, high_open=False, integer=False):
    """Return ``value`` if it is a number inside the given bounds, else raise naming ``key``.

    Parameters
    ----------
    key : str
        Dotted params key, used in the message.
    value : object
        The value to check.
    low, high : float or None
        Bounds; ``None`` means unbounded.
    low_open, high_open : bool
        Whether the bound itself is excluded.
    integer : bool
        Require an int (bools are refused).
    """
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ParameterError(f"{key} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ParameterError(f"{key} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ParameterError(f"{key} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return value


def span(key: str, value, *, low=None, high=None) -> tuple:
    """Return a ``[min, max]`` pair as a tuple, checking order and bounds, else raise naming ``key``."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ParameterError(f"{key} must be a [min, max] pair, got {value!r}")
    lo = number(f"{key}[0]", value[0], low=low, high=high)
    hi = number(f"{key}[1]", value[1], low=low, high=high)
    if lo > hi:
        raise ParameterError(f"{key} must have min <= max, got {value!r}")
    return lo, hi
