"""Execute the book: every numbered notebook in order, saved executed and as HTML.

``python -m tools.book --out build`` from the repository root (what ``make book`` runs) writes
``build/notebooks/NN_name.ipynb``, ``build/html/NN_name.html`` and ``build/book_times.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dgdm_lib.config import mode_name, repo_root
from tools.nbkernel import SlicedWaitKernelManager


def book_notebooks(folder: Path | None = None) -> list[Path]:
    """The chapters in reading order: ``notebooks/NN_*.ipynb``."""
    folder = folder or repo_root() / "notebooks"
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def execute_notebook(path: Path, out_dir: Path, timeout_s: int = 900) -> float:
    """Run one notebook top to bottom in its own folder; write the executed copy and its HTML page.

    Returns the wall time in seconds. A failing cell raises, after the partial notebook is saved.
    ``timeout_s`` bounds each cell: no cell of the book needs more than a few minutes on a CPU.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout_s, kernel_name="python3", kernel_manager_class=SlicedWaitKernelManager,
                            resources={"metadata": {"path": str(path.parent)}})
    (out_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    (out_dir / "html").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        nbformat.write(nb, out_dir / "notebooks" / path.name)
        body, _ = HTMLExporter().from_notebook_node(nb)
        (out_dir / "html" / path.with_suffix(".html").name).write_text(body, encoding="utf-8")
    return time.perf_counter() - start


def run_notebooks(notebooks: list[Path], out_dir: Path,
                  log: Callable[[str], None] = print) -> tuple[dict[str, float], dict[str, str]]:
    """Execute ``notebooks`` in order into ``out_dir``: ``({name: seconds}, {name: error})``.

    A failing chapter is recorded and the run goes on: later chapters train what they need.
    """
    times: dict[str, float] = {}
    failed: dict[str, str] = {}
    for nb in notebooks:
        log(f"[book] running {nb.name} ({mode_name()} mode) ...")
        start = time.perf_counter()
        try:
            execute_notebook(nb, out_dir)
        except Exception as error:  # noqa: BLE001 - a failing cell is the chapter's problem, not the book's
            failed[nb.name] = error_line(error)
        times[nb.name] = round(time.perf_counter() - start, 1)
        log(f"[book] {nb.name}: {times[nb.name]:.1f} s" + (f" FAILED: {failed[nb.name]}" if nb.name in failed else ""))
    return times, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build"), help="output folder (default build/)")
    parser.add_argument("--only", nargs="*", default=None, help="notebook name prefixes, e.g. 02 03")
    args = parser.parse_args(argv)
    notebooks = book_notebooks()
    if args.only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(p) for p in args.only)]
    times, failed = run_notebooks(notebooks, args.out)
    report = {"mode": mode_name(), "seconds": times, "errors": failed}
    (args.out / "book_times.json").write_text(json.dumps(report, indent=1))
    print(f"[book] wrote {args.out}/notebooks and {args.out}/html; total {sum(times.values()):.0f} s")
    if failed:
        print(f"[book] {len(failed)} chapter(s) failed: {', '.join(failed)}; their executed copies show where")
        return 1
    return 0


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_colours(text: str) -> str:
    """``text`` without terminal colour codes (nbclient's tracebacks carry them)."""
    return _ANSI.sub("", text)


def error_line(error: BaseException) -> str:
    """The gist of a cell error, at most 200 characters: nbclient's message ends with the
    exception's own line."""
    text = strip_colours(str(error)).strip()
    return f"{type(error).__name__}: {text.splitlines()[-1][:200] if text else ''}"


if __name__ == "__main__":
    sys.exit(main())
