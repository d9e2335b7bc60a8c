"""The results cache of ``measure``: damaged or edited files are regenerated, concurrent callers
all get the numbers, and nothing half-written or temporary is left behind."""

from __future__ import annotations

import json
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from dgdm_lib import evaluation, experiments
from dgdm_lib.experiments import BeetleRun, measure

METRICS = {"gt_known_loc@0.2": 42.5, "top1_loc@0.2": 40.25, "tau_val": 0.31, "maxboxacc_v2": 55.0,
           "val/best_tau": 0.31, "iou_curve": [0.1, 0.2]}


class _Model:
    train_result = {"seconds": 1.5}


@pytest.fixture
def evaluations(tmp_path, monkeypatch) -> list[int]:
    """``measure`` with training and evaluation replaced by a fixed answer; counts the evaluations."""
    monkeypatch.setenv("DGDM_DATA", str(tmp_path))
    monkeypatch.setenv("DGDM_SEED_OFFSET", "0")
    calls: list[int] = []
    lock = threading.Lock()

    def evaluate(model, val, test, tau=0.2):
        with lock:
            calls.append(1)
        return dict(METRICS)

    monkeypatch.setattr(experiments, "trained_model", lambda run, progress=True: _Model())
    monkeypatch.setattr(experiments, "beetle_loader", lambda run, split, **kwargs: split)
    monkeypatch.setattr(evaluation, "evaluate_val_test", evaluate)
    return calls


def _results(tmp_path):
    return sorted((tmp_path / "results").iterdir())


def _expected(run: BeetleRun) -> dict:
    return {**METRICS, "label": run.label, "method": run.method, "seed": run.seed,
            "pattern_contrast": run.pattern_contrast, "train_seconds": 1.5}


def test_measure_caches_its_numbers_and_reuses_them(tmp_path, evaluations) -> None:
    run = BeetleRun.of("cam")
    first = measure(run)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = measure(run)
    assert first == again == _expected(run) and len(evaluations) == 1


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],
    lambda text: "",
    lambda text: "[1, 2]",
    lambda text: json.dumps({"metrics": "many"}),
    lambda text: text.replace("42.5", "99.5"),
    lambda text: text.replace('"seed": 0', '"seed": "zero"'),
], ids=["truncated", "empty", "a-list", "wrong-types", "edited-number", "edited-type"])
def test_a_damaged_or_edited_results_file_is_measured_again_with_a_warning(tmp_path, evaluations, damage) -> None:
    run = BeetleRun.of("cam")
    measure(run)
    (path,) = _results(tmp_path)
    path.write_text(damage(path.read_text()))
    with pytest.warns(UserWarning, match=rf"measuring .* again: the cached results {path} "):
        again = measure(run)
    assert again == _expected(run) and len(evaluations) == 2
    assert measure(run) == again and len(evaluations) == 2  # rewritten: valid again


def test_many_concurrent_callers_all_get_the_numbers_and_leave_one_file(tmp_path, evaluations, monkeypatch) -> None:
    run, callers = BeetleRun.of("cam"), 64
    together = threading.Barrier(callers, timeout=60)

    def evaluate_then_wait(model, val, test, tau=0.2):
        evaluations.append(1)
        together.wait()  # every caller found no file; now they all write at once
        return dict(METRICS)

    monkeypatch.setattr(evaluation, "evaluate_val_test", evaluate_then_wait)
    with ThreadPoolExecutor(callers) as pool:
        answers = list(pool.map(lambda _: measure(run, progress=False), range(callers)))
    assert len(evaluations) == callers
    assert all(answer == _expected(run) for answer in answers)
    (path,) = _results(tmp_path)
    assert measure(run) == _expected(run)
    assert path.name.endswith("-tau0.2.json")
