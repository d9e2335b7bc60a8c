"""Each notebooks/*.py (jupytext percent, the source) must match its committed .ipynb pair."""

from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def _cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def test_there_is_a_start_here_notebook():
    assert any(p.name.startswith("00_start_here") for p in SOURCES)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_py_source_and_ipynb_pair_have_the_same_cells(source: Path):
    pair = source.with_suffix(".ipynb")
    assert pair.exists(), f"{pair.name} is missing: run `make sync`"
    from_py = jupytext.read(source)
    from_ipynb = nbformat.read(pair, as_version=4)
    assert _cells(from_py) == _cells(from_ipynb), f"{source.name} and {pair.name} differ: run `make sync`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_committed_ipynb_has_no_outputs(source: Path):
    nb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_outputs, f"cells {with_outputs} of {source.stem}.ipynb carry outputs: clear them before committing"
