"""The package's one atomic-write helper and its cross-process lock (``dgdm_lib.atomic``)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dgdm_lib.atomic import (
    STALE_AFTER_S,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    remove_stale_temps,
)


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_writes_replace_the_whole_file_with_ordinary_permissions(tmp_path) -> None:
    path = tmp_path / "sub" / "file.json"
    atomic_write_json(path, {"a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2]} and path.read_text().endswith("\n")
    atomic_write_text(path, "short")
    assert path.read_text() == "short"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["file.json"]


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary_file(tmp_path) -> None:
    path = atomic_write_bytes(tmp_path / "file.bin", b"old")

    def half_then_fail(stream) -> None:
        stream.write(b"new, half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_concurrent_writers_never_share_a_temporary_file(tmp_path) -> None:
    path, writers = tmp_path / "results.json", 100
    together = threading.Barrier(writers, timeout=60)

    def write(k: int) -> None:
        together.wait()
        atomic_write_json(path, {"writer": k, "payload": "x" * 10_000})

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    assert json.loads(path.read_text())["writer"] in range(writers)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_only_stale_temporary_files_of_the_same_name_are_removed(tmp_path) -> None:
    path, dead, alive = tmp_path / "checkpoint.pt", _dead_pid(), os.getpid()
    files = {
        "dead writer, old": (f".checkpoint.pt.{dead}.a1b2c3d4.tmp", 2 * STALE_AFTER_S, False),
        "no pid (older naming), old": (".checkpoint.pt.k9_x8y7z.tmp", 2 * STALE_AFTER_S, False),
        "dead writer, just written": (f".checkpoint.pt.{dead}.e5f6g7h8.tmp", 0, True),
        "running writer, old": (f".checkpoint.pt.{alive}.i9j0k1l2.tmp", 2 * STALE_AFTER_S, True),
        "running writer, a day old": (f".checkpoint.pt.{alive}.m3n4o5p6.tmp", 25 * 3600, False),
        "another file's": (f".metrics.json.{dead}.q7r8s9t0.tmp", 2 * STALE_AFTER_S, True),
        "not our pattern": (".checkpoint.pt.tmp", 2 * STALE_AFTER_S, True),
        "user file": ("checkpoint.pt.tmp", 2 * STALE_AFTER_S, True),
    }
    for name, age, _ in files.values():
        (tmp_path / name).write_bytes(b"")
        _age(tmp_path / name, age)
    removed = remove_stale_temps(path)
    kept = {what: (tmp_path / name).exists() for what, (name, _, _) in files.items()}
    assert kept == {what: keep for what, (_, _, keep) in files.items()}
    assert sorted(p.name for p in removed) == sorted(name for name, _, keep in files.values() if not keep)


_COUNTER = """
import json, sys, time
from pathlib import Path
from dgdm_lib.atomic import atomic_write_json, locked

path = Path(sys.argv[1])
for _ in range(25):
    with locked(path.with_name(".counter.lock")):
        count = json.loads(path.read_text())["count"]
        time.sleep(0.002)  # widen the read-modify-write window
        atomic_write_json(path, {"count": count + 1})
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl: locked() does not lock on Windows")
def test_locked_serialises_read_modify_write_across_processes(tmp_path) -> None:
    path = atomic_write_json(tmp_path / "counter.json", {"count": 0})
    workers = [subprocess.Popen([sys.executable, "-c", _COUNTER, str(path)]) for _ in range(3)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0]
    assert json.loads(path.read_text()) == {"count": 75}
