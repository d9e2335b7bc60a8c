"""Download CUB-200-2011 for real runs: ``python -m dgdm_lib data cub`` (the one place that downloads).

The archive (1.1 GB) is fetched with torchvision's ``download_url`` into a hidden folder under
``root``, checked against its MD5, extracted into a second hidden folder, and only then moved to
``root/CUB_200_2011`` in one rename. A bad checksum, a dropped connection or an interrupted
extraction therefore never leaves a half-filled ``CUB_200_2011`` folder; the partial files are
removed. Members with absolute paths or ``..`` are refused before they are written.

Errors are ``DownloadError`` (``ArchiveError`` when the archive itself is unusable) with a
one-line message naming the URL or file and what to do; a missing ``--archive`` file is a
``FileNotFoundError``.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from dgdm_lib.config import data_dir

__all__ = ["CUB_ARCHIVE", "CUB_MD5", "CUB_URL", "ArchiveError", "DownloadError", "add_data_parser", "cmd_data",
           "download_cub", "find_cub"]

CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
CUB_MD5 = "97eceeb196236b17998738112f37df78"
CUB_ARCHIVE = "CUB_200_2011.tgz"
CUB_FOLDER = "CUB_200_2011"
_BY_HAND = ("or download {url} by hand (a browser works) and run "
            "`python -m dgdm_lib data cub --archive PATH` with the file.")
_NETWORK_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException, ValueError)


class DownloadError(RuntimeError):
    """A download, checksum or extraction failed; the one-line message names the URL or file and what to do."""


class ArchiveError(DownloadError):
    """The archive itself is unusable: corrupt, not CUB-200-2011, or holding an unsafe member path."""


# --------------------------------------------------------------------------------------------
# Finding and downloading
# --------------------------------------------------------------------------------------------
def _is_complete(folder: Path) -> bool:
    return (folder / "images.txt").is_file() and (folder / "images").is_dir()


def _data_root(root: Path | str | None) -> Path:
    return Path(root).expanduser() if root is not None else data_dir()


def find_cub(root: Path | str | None = None) -> Path | None:
    """The extracted ``CUB_200_2011`` folder under ``root`` (or ``root`` itself if it is one), else None.

    A folder counts when it holds ``images.txt`` and ``images/``. Without ``root``: ``DGDM_CUB_ROOT``
    when it names such a folder, else ``data_dir()``.
    """
    candidates = [] if root is not None or not os.environ.get("DGDM_CUB_ROOT") else \
        [Path(os.environ["DGDM_CUB_ROOT"]).expanduser()]
    root = _data_root(root)
    for folder in (*candidates, root / CUB_FOLDER, root):
        if _is_complete(folder):
            return folder
    return None


def download_cub(root: Path | str | None = None, url: str = CUB_URL, md5: str | None = CUB_MD5,
                 progress: bool = True, archive: Path | str | None = None) -> Path:
    """Download and extract CUB-200-2011 into ``root/CUB_200_2011``; return that folder.

    Does nothing (no network) when the folder is already there (see ``find_cub``). ``archive`` uses a local
    ``CUB_200_2011.tgz`` instead of ``url``. ``md5`` is checked for both (``None`` skips the check).
    ``progress`` shows torchvision's download bar and one line per step.
    """
    found = find_cub(root)
    if found is not None:
        return found
    root = _prepare_root(_data_root(root))
    if archive is not None:
        return _install(_checked_archive(Path(archive).expanduser(), md5), root, progress)
    work = root / f".{CUB_FOLDER}.download"
    path = _download(url, work, md5, progress)
    try:
        folder = _install(path, root, progress)
    except ArchiveError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    except DownloadError as error:
        if md5 is None:
            shutil.rmtree(work, ignore_errors=True)
            raise
        raise DownloadError(f"{error} The verified archive was kept at {path}: re-running the command "
                            "extracts it without downloading again.") from error
    shutil.rmtree(work, ignore_errors=True)
    return folder


def _prepare_root(root: Path) -> Path:
    """Create ``root``; refuse an existing, incomplete ``CUB_200_2011`` folder (it is never overwritten)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot create the data folder {root}: {error}. "
                            "Pass --root with a writable folder.") from None
    target = root / CUB_FOLDER
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DownloadError(f"{target} exists but lacks images.txt or images/ (an earlier, incomplete copy?). "
                            "Move it away or delete it, then re-run the command.")
    return root


def _download(url: str, work: Path, md5: str | None, progress: bool) -> Path:
    """Fetch ``url`` into ``work/CUB_200_2011.tgz`` with torchvision; on any failure remove ``work`` and raise."""
    from torchvision.datasets.utils import download_url

    if md5 is None:  # download_url would accept any leftover file when there is no checksum
        shutil.rmtree(work, ignore_errors=True)
    path = work / CUB_ARCHIVE
    _say(progress, f"downloading {url} to {work}")
    try:
        with _quiet(not progress):
            download_url(url, str(work), filename=CUB_ARCHIVE, md5=md5)
    except BaseException as error:
        problem = _download_problem(error, url, path, md5)
        shutil.rmtree(work, ignore_errors=True)
        if problem is None:
            raise
        raise DownloadError(problem) from error
    return path


def _download_problem(error: BaseException, url: str, path: Path, md5: str | None) -> str | None:
    """One-line message for a failed ``download_url``; None for an interruption (Ctrl-C), re-raised as is."""
    by_hand = _BY_HAND.format(url=url)
    if isinstance(error, RuntimeError) and not isinstance(error, RecursionError) and path.is_file():
        from torchvision.datasets.utils import calculate_md5

        return (f"the file downloaded from {url} ({path.stat().st_size} bytes, MD5 {calculate_md5(path)}) does not "
                f"match the expected MD5 {md5}: the transfer was cut short or the file on the server changed. "
                f"The file was deleted. Re-run the command, {by_hand}")
    if isinstance(error, (RecursionError, *_NETWORK_ERRORS)):
        return (f"cannot download {url}: {_reason(error)}. Nothing was extracted and the partial file was deleted. "
                f"Check the connection (and HTTPS_PROXY if you need a proxy) and re-run the command, {by_hand}")
    return None


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        error = error.reason if isinstance(error.reason, BaseException) else error
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def _checked_archive(path: Path, md5: str | None) -> Path:
    """``path`` if it exists and matches ``md5`` (skipped when None); it is never deleted."""
    if not path.is_file():
        raise FileNotFoundError(f"archive {path} not found: pass the path of {CUB_ARCHIVE} downloaded from {CUB_URL}.")
    if md5 is not None:
        from torchvision.datasets.utils import calculate_md5

        actual = calculate_md5(path)
        if actual != md5:
            raise DownloadError(f"{path} has MD5 {actual}, expected {md5}: it is not {CUB_ARCHIVE} or it was cut "
                                f"short. Download it again from {CUB_URL} (the file was left in place).")
    return path


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, flush=True)


@contextlib.contextmanager
def _quiet(quiet: bool) -> Iterator[None]:
    """Silence torchvision's tqdm bar (it writes to stderr and has no switch) when ``quiet``."""
    if not quiet:
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        yield


# --------------------------------------------------------------------------------------------
# Extracting
# --------------------------------------------------------------------------------------------
def _install(archive: Path, root: Path, progress: bool) -> Path:
    """Extract ``archive`` into a hidden folder under ``root``, then rename its ``CUB_200_2011`` into place."""
    target = root / CUB_FOLDER
    _say(progress, f"extracting {archive} into {target}")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{CUB_FOLDER}.extract-", dir=root))
    except OSError as error:
        raise DownloadError(f"cannot write into {root}: {error}. Pass --root with a writable folder.") from None
    try:
        _extract(archive, staging)
        extracted = staging / CUB_FOLDER
        if not _is_complete(extracted):
            raise ArchiveError(f"{archive} holds no {CUB_FOLDER}/images.txt and {CUB_FOLDER}/images/: it is not the "
                               f"CUB-200-2011 archive. Download {CUB_ARCHIVE} from {CUB_URL}.")
        os.replace(extracted, target)
    except OSError as error:
        raise DownloadError(f"cannot extract {archive} into {root}: {_reason(error)}. Nothing was left behind; "
                            "free some disk space or check the folder's permissions and re-run the command.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract(archive: Path, dest: Path) -> None:
    """Extract a tar archive (any compression) into ``dest``: one pass, unsafe members refused.

    torchvision's ``extract_archive`` calls ``extractall`` without a filter, so tarfile is used
    here with ``filter="data"`` (links leaving ``dest``, devices) plus a check of every name.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, members=_safe_members(tar, archive), filter="data")
    except tarfile.FilterError as error:
        raise _unsafe(archive, str(error)) from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ArchiveError(f"{archive} is not a readable tar archive ({_reason(error)}): it is corrupt or cut short. "
                           f"Download {CUB_ARCHIVE} again from {CUB_URL}.") from None


def _safe_members(tar: tarfile.TarFile, archive: Path) -> Iterator[tarfile.TarInfo]:
    """The archive's members in order; ``ArchiveError`` at the first absolute path or ``..`` component."""
    for member in tar:
        name = member.name.replace("\\", "/")
        if name.startswith("/") or ".." in PurePosixPath(name).parts or (len(name) > 1 and name[1] == ":"):
            raise _unsafe(archive, f"{member.name!r}: absolute path or '..'")
        yield member


def _unsafe(archive: Path, what: str) -> ArchiveError:
    return ArchiveError(f"{archive} holds an unsafe member ({what}); extraction stopped and its files were removed. "
                        f"It is not the genuine {CUB_ARCHIVE}: download it again from {CUB_URL}.")


# --------------------------------------------------------------------------------------------
# Command line: python -m dgdm_lib data cub
# --------------------------------------------------------------------------------------------
def add_data_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``data`` sub-command to ``subparsers`` (from ``add_subparsers(dest="command")``); return it.

    ``data cub [--root DIR] [--archive PATH] [--url URL] [--md5 HEX] [--no-progress]``
    """
    p = subparsers.add_parser(
        "data", help="download CUB-200-2011 (1.1 GB) and extract it into the data folder",
        usage="%(prog)s [-h] cub [--root DIR] [--archive PATH] [--url URL] [--md5 HEX] [--no-progress]",
        description="Download CUB_200_2011.tgz, check its MD5, extract it and move CUB_200_2011/ into place "
                    "only once complete. Does nothing when the folder is already there.")
    p.add_argument("dataset", choices=["cub"], help="the dataset: cub = CUB-200-2011 (Caltech-UCSD Birds)")
    p.add_argument("--root", type=Path, default=None, metavar="DIR",
                   help="folder that receives CUB_200_2011/ (default: DGDM_DATA, else <repo>/data)")
    p.add_argument("--archive", type=Path, default=None, metavar="PATH",
                   help=f"a {CUB_ARCHIVE} already on disk: checked against the MD5 and extracted, no network")
    p.add_argument("--url", default=CUB_URL,
                   help="download from this URL instead (a mirror, or a local server in tests); the file must "
                        "still match the MD5 of the official archive (default: %(default)s)")
    p.add_argument("--md5", default=CUB_MD5, metavar="HEX",
                   help="expected MD5 of the archive, for a mirror that serves another build of it "
                        "(default: the official archive's, %(default)s)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar or step lines")
    return p


def cmd_data(args: argparse.Namespace) -> int:
    """Run ``data cub``; print where the dataset is and how to use it. Returns 0.

    Raises ``DownloadError`` (incl. ``ArchiveError``) or ``FileNotFoundError`` with a one-line message.
    """
    folder = find_cub(args.root)
    if folder is not None:
        print(f"CUB-200-2011 is already at {folder}: nothing downloaded.")
    else:
        folder = download_cub(args.root, url=args.url, md5=args.md5, progress=args.progress,
                              archive=args.archive)
        print(f"CUB-200-2011 is ready at {folder}.")
    print(f"Next: python -m dgdm_lib train --dataset cub --data-root {folder}")
    print(_default_note(folder))
    return 0


def _default_note(folder: Path) -> str:
    """Whether ``--dataset cub`` and ``CUB200()`` find ``folder`` without options, or which variable to set."""
    env = os.environ.get("DGDM_CUB_ROOT")
    default = Path(env).expanduser() if env else data_dir() / CUB_FOLDER
    if default.resolve() == folder.resolve():
        return "(--dataset cub and CUB200() find it without --data-root)"
    return f"or export DGDM_CUB_ROOT={folder} so that --dataset cub and CUB200() find it without --data-root"
