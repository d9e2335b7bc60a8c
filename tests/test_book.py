"""The book runner: every chapter runs, and a failing one is recorded, not fatal."""


def test_book_records_a_failing_chapter_and_runs_the_next(tmp_path, monkeypatch):
    from tools import book

    ran = []

    def fake_execute(path, out_dir, timeout_s=900):
        ran.append(path.name)
        if path.name.startswith("01"):
            raise RuntimeError("\x1b[31mCell 3\x1b[0m\nAssertionError: \x1b[31mCAM peaks low\x1b[0m")
        return 0.0

    monkeypatch.setattr(book, "execute_notebook", fake_execute)
    names = [tmp_path / "00_a.ipynb", tmp_path / "01_b.ipynb", tmp_path / "02_c.ipynb"]
    times, failed = book.run_notebooks(names, tmp_path, log=lambda line: None)
    assert ran == ["00_a.ipynb", "01_b.ipynb", "02_c.ipynb"]
    assert set(times) == set(ran)
    assert failed == {"01_b.ipynb": "RuntimeError: AssertionError: CAM peaks low"}
