"""The project's one exception hierarchy."""


class InstrclfError(Exception):
    """Base class of every error this project raises on purpose."""


class ParameterError(InstrclfError, ValueError):
    """A value in params.yaml (or a function argument) is invalid; the message names the key."""


class DataError(InstrclfError):
    """Input data is missing, unreadable or inconsistent; the message names the file(s)."""


class DownloadError(InstrclfError):
    """A remote file could not be fetched or failed verification."""
