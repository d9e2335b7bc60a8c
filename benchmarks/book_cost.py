"""Book cost: how long each notebook takes in quick and classroom mode, and how long the beetles
dataset takes to generate.

Notebook times come from a file when one exists (``build/book_times.json``, written by
``make book``, or ``build/bench_book/<mode>/book_times.json``, written by an earlier benchmark),
otherwise the benchmark executes the notebooks itself (``tools.book.run_notebooks``, a fresh
kernel per notebook, with ``DGDM_QUICK`` set for the mode). Every number says where it came from.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools.book import run_notebooks, strip_colours

MODES = ("quick", "classroom")
BUDGET_S = {"quick": 90.0, "classroom": 180.0}


def _mtime(path: Path) -> str:
    return _dt.datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(timespec="seconds")


def read_times(path: Path, mode: str) -> tuple[dict[str, float], dict[str, str]] | None:
    """``({notebook name: seconds}, {notebook name: error})`` from a ``book_times.json`` of ``mode``,
    or None when the file is missing, unreadable or of another mode."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("mode") != mode or not isinstance(data.get("seconds"), dict):
        return None
    errors = data.get("errors") if isinstance(data.get("errors"), dict) else {}
    return {str(k): float(v) for k, v in data["seconds"].items()}, {str(k): str(v) for k, v in errors.items()}


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute(notebooks: Sequence[Path], mode: str, out_dir: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Execute ``notebooks`` in ``mode``; ``{name: seconds}`` plus ``{name: error}`` for failures.
    Writes ``out_dir/book_times.json`` for later runs."""
    with _environment(DGDM_QUICK="1" if mode == "quick" else "0"):
        times, errors = run_notebooks(list(notebooks), out_dir, log=lambda line: log(f"{line} [{mode}]"))
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"mode": mode, "seconds": times, "errors": errors, "load_after": _load(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}
    (out_dir / "book_times.json").write_text(json.dumps(record, indent=1))
    return {"seconds": times, "errors": errors}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _describe(path: Path, build_dir: Path) -> str:
    """Where a times file came from, for the page."""
    try:
        shown = path.resolve().relative_to(build_dir.resolve().parent)
    except ValueError:
        shown = path
    who = "an earlier benchmark run" if path.parent.parent.name == "bench_book" else "`make book`"
    extra = ""
    try:
        data = json.loads(path.read_text())
        if data.get("load_after"):
            extra = f", load average after {' / '.join(f'{x:.2f}' for x in data['load_after'])}"
    except (OSError, ValueError):
        pass
    return f"executed by {who}: {shown} ({_mtime(path)}{extra})"


def notebook_times(
    notebooks: Sequence[Path],
    build_dir: Path,
    source: str = "auto",
    modes: Sequence[str] = MODES,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Per mode, per notebook: seconds and where the number came from.

    ``source``: ``"files"`` (only read files; missing notebooks are reported as not measured),
    ``"run"`` (execute every notebook now) or ``"auto"`` (read files, execute what they lack).
    """
    if source not in ("auto", "files", "run"):
        raise ValueError(f"book source must be 'auto', 'files' or 'run', got {source!r}")
    out: dict[str, Any] = {}
    for mode in modes:
        rows: dict[str, dict[str, Any]] = {}
        if source != "run":
            for path in (build_dir / "book_times.json", build_dir / "bench_book" / mode / "book_times.json"):
                found = read_times(path, mode)
                if found is None:
                    continue
                times, errors = found
                for nb in notebooks:
                    if nb.name in times and nb.name not in rows:
                        stale = nb.stat().st_mtime > path.stat().st_mtime
                        rows[nb.name] = {"seconds": times[nb.name], "source": _describe(path, build_dir),
                                         "stale": stale, "error": strip_colours(errors.get(nb.name, "")) or None}
        missing = [nb for nb in notebooks if nb.name not in rows]
        if missing and source in ("auto", "run"):
            ran = execute(missing, mode, build_dir / "bench_book" / mode, log)
            for nb in missing:
                rows[nb.name] = {"seconds": ran["seconds"][nb.name], "source": "executed by this benchmark",
                                 "stale": False, "error": ran["errors"].get(nb.name)}
        for nb in notebooks:
            rows.setdefault(nb.name, {"seconds": None, "source": "not measured (run `make book`, or --book-source run)",
                                      "stale": False})
        out[mode] = {"budget_s": BUDGET_S[mode], "notebooks": rows}
    return out


def dataset_generation(sizes: dict[str, int] | None = None, repeats: int = 1) -> dict[str, Any]:
    """Seconds to generate each beetles split at the default parameters (in memory, no cache)."""
    from dgdm_lib.data import SPLIT_SIZES, BeetlesConfig, generate_beetles, split_seed

    sizes = dict(sizes or SPLIT_SIZES)
    config = BeetlesConfig()
    out: dict[str, Any] = {"sizes": sizes, "seconds": {}}
    for split, size in sizes.items():
        best = float("inf")
        for _ in range(repeats):
            began = time.perf_counter()
            generate_beetles(size, split_seed(0, split), config)
            best = min(best, time.perf_counter() - began)
        out["seconds"][split] = round(best, 2)
    out["total_s"] = round(sum(out["seconds"].values()), 2)
    return out
