"""Execute the book: every numbered notebook in order, saved executed and as HTML.

``python -m dgdm_lib.book --out build`` (what ``make book`` runs) writes
``build/notebooks/NN_name.ipynb``, ``build/html/NN_name.html`` and ``build/book_times.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dgdm_lib.config import mode_name, repo_root


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
    client = NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build"), help="output folder (default build/)")
    parser.add_argument("--only", nargs="*", default=None, help="notebook name prefixes, e.g. 02 03")
    args = parser.parse_args(argv)
    notebooks = book_notebooks()
    if args.only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(p) for p in args.only)]
    times: dict[str, float] = {}
    for nb in notebooks:
        print(f"[book] running {nb.name} ({mode_name()} mode) ...", flush=True)
        seconds = execute_notebook(nb, args.out)
        times[nb.name] = round(seconds, 1)
        print(f"[book] {nb.name}: {seconds:.1f} s", flush=True)
    (args.out / "book_times.json").write_text(json.dumps({"mode": mode_name(), "seconds": times}, indent=1))
    print(f"[book] wrote {args.out}/notebooks and {args.out}/html; total {sum(times.values()):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
