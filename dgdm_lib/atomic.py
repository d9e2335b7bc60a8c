"""Atomic file writes and a cross-process lock, for every cache and run file of the package.

``atomic_write(path, write)`` writes through a temporary file in ``path``'s folder, named
``.<name>.<pid>.<random>.tmp``, flushes it to disk and renames it over ``path`` with
``os.replace``: a reader sees the old file or the new one, never half of one, and concurrent
writers never share a temporary file (the last rename wins). A writer killed mid-write (SIGKILL)
leaves its temporary file behind; later writes of the same ``path`` remove such leftovers once
their writer has stopped running and they have not changed for ``STALE_AFTER_S`` seconds.

``locked(lock_file)`` serialises a read-modify-write across processes with ``fcntl.flock``
(Unix). Where ``fcntl`` is missing (Windows) it does not lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "STALE_AFTER_S",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "locked",
    "remove_stale_temps",
]

#: A temporary file whose writer is no longer running is removed once unchanged this long.
STALE_AFTER_S = 60.0
#: Removed whoever wrote it (a reused PID, or a writer on another machine sharing the folder).
ABANDONED_AFTER_S = 24 * 3600.0


def _read_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# Read once, at import: os.umask can only be read by setting it, which races with other threads.
_UMASK = _read_umask()


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(stream)`` on a temporary binary file next to ``path``, fsync it, then rename it
    to ``path``. On any error the temporary file is removed and ``path`` keeps its old content.

    The file gets the permissions of any newly created file (``0o666`` less the umask), not
    ``mkstemp``'s private ``0o600``: caches and run folders are shared like any data file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """``path`` holds exactly ``data`` afterwards, or (on error) what it held before."""
    return atomic_write(path, lambda stream: stream.write(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """``atomic_write_bytes`` of ``text`` encoded with ``encoding``."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(
    path: str | Path, data: Any, indent: int | None = 2, default: Callable[[Any], Any] | None = None
) -> Path:
    """``data`` as JSON (``json.dumps(data, indent=indent, default=default)`` plus a newline)."""
    return atomic_write_text(path, json.dumps(data, indent=indent, default=default) + "\n")


def _temp_pattern(path: Path) -> re.Pattern[str]:
    """Names ``atomic_write`` gives its temporary files for ``path`` (the PID part is absent in
    files written before it was added)."""
    return re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)\.)?[a-z0-9_]+\.tmp")


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (assumed so where that cannot be asked)."""
    if os.name == "nt":  # os.kill would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def _is_stale(temporary: Path, pid: int | None, now: float) -> bool:
    age = now - temporary.stat().st_mtime
    if age > ABANDONED_AFTER_S:
        return True
    return age > STALE_AFTER_S and (pid is None or not _running(pid))


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove the temporary files that interrupted ``atomic_write`` calls left for ``path``.

    Only names ``atomic_write`` gives (``.<name>.<pid>.<random>.tmp``) are considered, and only
    files unchanged for ``STALE_AFTER_S`` seconds whose writer no longer runs (or unchanged for a
    day): a live writer's file is never touched. Returns the files removed; never raises.
    """
    path = Path(path)
    pattern, now, removed = _temp_pattern(path), time.time(), []
    try:
        candidates = [(entry, pattern.fullmatch(entry.name)) for entry in path.parent.iterdir()]
    except OSError:
        return removed
    for entry, match in candidates:
        if match is None:
            continue
        try:
            if _is_stale(entry, int(match.group(1)) if match.group(1) else None, now):
                entry.unlink()
                removed.append(entry)
        except OSError:  # gone already, or not ours to remove
            continue
    return removed


@contextlib.contextmanager
def locked(lock_file: str | Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``lock_file`` (created if missing) for the ``with``
    block, so that read-modify-write cycles of several processes do not interleave. Without
    ``fcntl`` (Windows) it does not lock."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
