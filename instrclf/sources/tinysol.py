"""The ``tinysol`` source: TinySOL's files from Zenodo (or a mirror), md5-checked, extracted safely.

The two files are fetched with pooch into a cache that later runs reuse. Pooch streams
each download into a temporary file beside the cache entry and moves it into place only
once its md5 matches, so an interrupted or corrupt download never looks complete.
"""

import csv
import hashlib
import logging
import os
import posixpath
import shutil
import tarfile
import time
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import urlparse
from urllib.request import url2pathname

import pooch

from .. import layout
from ..errors import DataError, DownloadError, ParameterError

ARCHIVE = "TinySOL.tar.gz"
METADATA = layout.METADATA_FILE
FILES = (ARCHIVE, METADATA)

#: Environment variable that moves the download cache (default: the OS user cache).
CACHE_ENV = "INSTRCLF_CACHE"

OFFLINE_HINT = (
    "To work offline use the default source: set `data.source: soundfont` in params.yaml, "
    "or run `dvc exp run -S data.source=soundfont`; for a copy of TinySOL you already have, "
    "use `data.source: local` with `data.local.path`."
)

_URL_SCHEMES = ("file", "http", "https")

log = logging.getLogger(__name__)


def check(settings) -> None:
    """Check ``data.tinysol`` beyond its types, before anything is downloaded.

    Parameters
    ----------
    settings : TinysolSettings
        ``data.tinysol`` (its URL scheme and md5 format are already checked).

    Raises
    ------
    ParameterError
        A URL without a host (or a file URL without a folder), or checksums of files
        that TinySOL does not have.
    """
    check_base_url(settings.base_url)
    unknown = sorted(set(settings.md5) - set(FILES))
    if unknown:
        raise ParameterError(f"data.tinysol.md5 has unknown file(s) {unknown}; expected only {list(FILES)}")


def check_base_url(value, *, key="data.tinysol.base_url") -> str:
    """Return an http(s) or file URL without its trailing slash, else raise naming ``key``."""
    parsed = urlparse(value) if isinstance(value, str) else None
    if parsed is None or parsed.scheme not in _URL_SCHEMES:
        raise ParameterError(f"{key} must be an http://, https:// or file:// URL, got {value!r}")
    if parsed.scheme != "file" and not parsed.netloc:
        raise ParameterError(f"{key} must name a host, got {value!r}")
    if parsed.scheme == "file" and not parsed.path:
        raise ParameterError(f"{key} must name a folder, got {value!r}")
    return value.rstrip("/")


def cache_location(cache_dir=None) -> Path:
    """Folder of the download cache: ``cache_dir``, else ``$INSTRCLF_CACHE``, else the OS user cache."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(pooch.os_cache("instrclf"))


def download(out_dir, *, settings, cache_dir=None, retries=3, wait=2.0, timeout=60, progressbar=True) -> dict:
    """Fetch TinySOL into ``out_dir`` in the raw layout.

    Parameters
    ----------
    out_dir : str or Path
        Folder (created if needed, without an ``audio/`` yet); receives ``TinySOL_metadata.csv``
        and ``audio/<Path>``.
    settings : TinysolSettings
        ``data.tinysol``: the files are fetched from ``<base_url>/<name>`` (http, https or
        file URL) and must match ``md5[<name>]``.
    cache_dir : str, Path or None
        Download cache; see :func:`cache_location`.
    retries : int
        Further attempts after a dropped connection, a timeout or a 5xx/429 answer.
    wait : float
        Seconds before the first retry, doubled for each later one.
    timeout : float
        Seconds without an answer from the server before an attempt fails.
    progressbar : bool
        Show a progress bar while downloading.

    Returns
    -------
    dict
        ``files_downloaded`` (0 when both came from the cache), ``archive_mb``, ``archive_files``.
    """
    check(settings)
    base_url, md5 = settings.base_url.rstrip("/"), settings.md5
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_location(cache_dir)
    paths, downloaded = {}, 0
    for name in FILES:
        paths[name], fetched = retrieve(
            f"{base_url}/{name}", name=name, md5=md5[name], cache_dir=cache,
            retries=retries, wait=wait, timeout=timeout, progressbar=progressbar,
        )
        downloaded += fetched
    shutil.copyfile(paths[METADATA], out_dir / METADATA)
    n_files = extract(paths[ARCHIVE], out_dir / layout.AUDIO_DIR, first_path=first_path(paths[METADATA]))
    return {
        "files_downloaded": downloaded,
        "archive_mb": round(paths[ARCHIVE].stat().st_size / 1e6, 1),
        "archive_files": n_files,
    }


class _Downloader:
    """A pooch downloader for http(s) and file URLs that counts calls and hashes what it wrote."""

    def __init__(self, *, timeout, progressbar):
        self.http = pooch.HTTPDownloader(progressbar=progressbar, timeout=timeout)
        self.calls = 0
        self.md5 = None

    def __call__(self, url, output_file, pooch_, check_only=False):
        self.calls += 1
        self.md5 = None
        if urlparse(url).scheme == "file":
            _copy_local(url, output_file)
        else:
            self.http(url, output_file, pooch_)
        self.md5 = file_md5(output_file)


def _copy_local(url, output_file):
    """Copy the file behind a ``file://`` URL to ``output_file``."""
    source = Path(url2pathname(urlparse(url).path))
    try:
        with source.open("rb") as src, open(output_file, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except OSError as exc:
        raise DownloadError(f"cannot read {url}: {exc.strerror or exc}") from None


def file_md5(path) -> str:
    """Hex md5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def retrieve(url, *, name, md5, cache_dir, retries=3, wait=2.0, timeout=60, progressbar=True):
    """Return the cached, md5-verified copy of ``url``, downloading it if needed.

    Parameters
    ----------
    url : str
        Where the file lives.
    name : str
        File name inside the cache.
    md5 : str
        Expected md5; a cached file that does not match is downloaded again.
    cache_dir : Path
        The cache folder.
    retries, wait, timeout, progressbar
        As in :func:`download`.

    Returns
    -------
    (Path, int)
        The cached file, and 1 if it was downloaded now (0 if it came from the cache).
    """
    import requests  # a dependency of pooch; imported here like pooch does

    fetcher = _Downloader(timeout=timeout, progressbar=progressbar)
    for attempt in range(retries + 1):
        try:
            path = pooch.retrieve(url, known_hash=f"md5:{md5}", fname=name, path=cache_dir, downloader=fetcher)
            return Path(path), int(fetcher.calls > 0)
        except ValueError:  # pooch's hash mismatch; it has already deleted the download
            raise DownloadError(
                f"{name} from {url} failed its md5 check: expected {md5}, got {fetcher.md5}. "
                "Nothing was kept; check data.tinysol.md5 and data.tinysol.base_url."
            ) from None
        except requests.RequestException as exc:
            error, transient = explain(exc, url=url)
            if not transient:
                raise error from None
            if attempt == retries:
                raise DownloadError(
                    f"{error} Gave up after {retries + 1} attempt(s); nothing partial was kept "
                    f"in the cache ({cache_dir}). Run the stage again to retry."
                ) from None
            delay = wait * 2**attempt
            log.warning("%s Retrying in %.0f s (%d of %d).", error, delay, attempt + 1, retries)
            time.sleep(delay)
    raise AssertionError("unreachable")  # the loop always returns or raises


def explain(exc, *, url) -> tuple:
    """Turn a requests exception into a clear DownloadError and whether retrying may help.

    Parameters
    ----------
    exc : requests.RequestException
        What the download raised.
    url : str
        The URL being fetched, named in the message.

    Returns
    -------
    (DownloadError, bool)
        The error to raise, and True for transient failures (dropped connection,
        timeout, HTTP 5xx or 429).
    """
    import requests
    from urllib3.exceptions import ConnectTimeoutError  # NewConnectionError and DNS errors derive from it

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        transient = status == 429 or status >= 500
        if status == 404:
            message = f"{url} was not found (HTTP 404); check data.tinysol.base_url."
        else:
            message = f"{url} answered HTTP {status} {exc.response.reason}."
        return DownloadError(message), transient
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(exc, requests.ConnectTimeout) or isinstance(reason, ConnectTimeoutError):
        host = urlparse(url).netloc
        message = f"could not reach the host {host} ({_why(exc)}) to fetch {url}. {OFFLINE_HINT}"
        return DownloadError(message), False
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
        return DownloadError(f"the download of {url} was interrupted ({_why(exc)})."), True
    return DownloadError(f"the download of {url} failed: {_why(exc)}"), False


def _why(exc) -> str:
    """The innermost readable reason inside a requests exception (urllib3 nests them)."""
    cause = exc.args[0] if exc.args else exc
    cause = getattr(cause, "reason", None) or cause
    if isinstance(cause, BaseException) and cause.args and isinstance(cause.args[0], str):
        return cause.args[0]
    return str(cause)


def first_path(metadata) -> str:
    """The ``Path`` of the first row of a TinySOL metadata CSV (used to find the archive's root)."""
    try:
        with open(metadata, newline="", encoding="utf-8") as f:
            row = next(csv.DictReader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {metadata}: {exc}") from None
    if row is None or not row.get("Path"):
        raise DataError(f"{metadata} has no rows with a 'Path' column")
    return row["Path"]


def check_member(member: tarfile.TarInfo, *, archive) -> None:
    """Raise a DataError naming ``member`` if extracting it could write outside the target.

    Parameters
    ----------
    member : tarfile.TarInfo
        One archive member.
    archive : str or Path
        The archive, named in the message.
    """
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    problem = None
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        problem = "it has an absolute path"
    elif ".." in parts:
        problem = "its path contains '..'"
    elif member.ischr() or member.isblk() or member.isfifo():
        problem = "it is a device or FIFO"
    elif member.issym() or member.islnk():
        # Symlinks are relative to the member's folder, hard links to the archive root.
        base = posixpath.dirname(name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            problem = f"it links outside the target folder (-> {member.linkname!r})"
    elif not (member.isfile() or member.isdir()):
        problem = "it is not a regular file, folder or link"
    if problem:
        raise DataError(f"{archive}: refusing to extract member {name!r}: {problem}")


def find_root(names, *, path) -> str:
    """The folder prefix inside the archive under which ``path`` lies (``"TinySOL/"`` or ``""``)."""
    for name in names:
        if name == path or name.endswith("/" + path):
            return name[: len(name) - len(path)]
    raise DataError(f"the archive has no file at {path!r} (the metadata's first Path), under any top folder")


def extract(archive, dest, *, first_path) -> int:
    """Extract ``archive`` safely so that the metadata's paths lie directly under ``dest``.

    Parameters
    ----------
    archive : str or Path
        A (compressed) tarball.
    dest : str or Path
        Folder to create; it must not exist yet.
    first_path : str
        One ``Path`` from the metadata, used to find the archive's top folder.

    Returns
    -------
    int
        Number of files extracted.
    """
    dest = Path(dest)
    if dest.exists():
        raise DataError(f"{dest} already exists; extraction needs a fresh folder")
    staging = dest.with_name(f".{dest.name}.extract")
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member, archive=archive)
            root = find_root([m.name for m in members if m.isfile()], path=first_path)
            tar.extractall(staging, members=members, filter="data")
        (staging / root).rename(dest)
    except (tarfile.TarError, EOFError) as exc:  # FilterError is a TarError
        raise DataError(f"{archive}: cannot extract safely: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sum(m.isfile() for m in members)
