"""The benchmark code (benchmarks/): its run plan, statistics, verdicts, report and a tiny end-to-end run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from dgdm_lib.config import repo_root
from dgdm_lib.experiments import CLASSROOM

if str(repo_root()) not in sys.path:
    sys.path.insert(0, str(repo_root()))

from benchmarks import accuracy, book_cost, report, run  # noqa: E402


@pytest.fixture()
def one_thread():
    """Timing and training tests use one torch thread: on a shared 2-core machine two threads that wait
    for each other are many times slower. Restores the previous setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------
def test_full_plan_reuses_duplicate_rows_and_counts_57_runs_for_three_seeds():
    plan = accuracy.build_plan((0, 1, 2), CLASSROOM)
    # 6 methods + block 1, 2 + beta 2, 2.5, 3.5 + 4 methods x contrasts 0.06, 0.12 = 19 configurations.
    assert len(plan.runs) == 19 * 3
    assert len({r.key() for r in plan.runs}) == len(plan.runs)
    by_name = {row.name: row for row in plan.rows}
    same = [("block adaptive", "block 3"), ("block 3", "SAGD stage 1"), ("beta 3", "DGDM (stage 1+2 + CAGD)"),
            ("CAM @ 0.09", "CAM")]
    for a, b in same:
        keys_a = [r.key() for r in by_name[a].runs((0,), CLASSROOM)]
        keys_b = [r.key() for r in by_name[b].runs((0,), CLASSROOM)]
        assert keys_a == keys_b, f"{a} should reuse the runs of {b}"


def test_plan_runs_are_the_notebooks_cache_entries():
    plan = accuracy.build_plan((0,), CLASSROOM, groups=("methods",))
    keys = {r.key() for r in plan.runs}
    from dgdm_lib.experiments import BeetleRun

    assert BeetleRun.of("sagd", schedule=CLASSROOM).key() in keys
    assert BeetleRun.of("random_block", block_size=3, schedule=CLASSROOM).key() in keys


def test_plan_orders_runs_seed_by_seed_so_an_interruption_leaves_whole_seeds():
    plan = accuracy.build_plan((0, 1), CLASSROOM, groups=("methods", "beta"))
    seeds = [r.seed for r in plan.runs]
    assert seeds == sorted(seeds)


# --------------------------------------------------------------------------------------------
# Statistics and verdicts
# --------------------------------------------------------------------------------------------
def test_welch_difference_matches_a_hand_computed_interval():
    # a: mean 12, var 4 (n 3); b: mean 10, var 1 (n 3): se = sqrt(4/3 + 1/3) = 1.291, dof = 2.94...
    diff = accuracy.difference([10.0, 12.0, 14.0], [9.0, 10.0, 11.0])
    assert diff["diff"] == pytest.approx(2.0)
    from scipy import stats

    se = (5 / 3) ** 0.5
    dof = (5 / 3) ** 2 / ((4 / 3) ** 2 / 2 + (1 / 3) ** 2 / 2)
    half = stats.t.ppf(0.975, dof) * se
    assert diff["ci95"] == pytest.approx([2.0 - half, 2.0 + half])


@pytest.mark.parametrize(
    ("ci", "expected"),
    [([0.5, 3.0], "holds"), ([-3.0, -0.5], "reversed"), ([-1.0, 2.0], "not shown")],
)
def test_verdict_reads_the_sign_of_the_whole_interval(ci, expected):
    assert accuracy.verdict({"diff": sum(ci) / 2, "ci95": ci}) == expected


def test_not_worse_claim_tolerates_a_drop_within_its_margin():
    assert accuracy.verdict({"diff": -0.2, "ci95": [-0.8, 0.4]}, margin=1.0) == "holds"
    assert accuracy.verdict({"diff": -0.2, "ci95": [-1.5, 0.4]}, margin=1.0) == "not shown"


def _stat(values):
    import statistics

    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values), "ci95": [0, 0], "values": values}


def test_claims_say_reversed_when_the_baseline_is_clearly_better():
    methods = [
        {"row": "CAM", **{k: _stat([60.0, 61.0, 62.0]) for k in accuracy.CLAIM_METRICS}},
        {"row": "SAGD stage 1", **{k: _stat([40.0, 41.0, 42.0]) for k in accuracy.CLAIM_METRICS}},
    ]
    found = {c["claim"]: c for c in accuracy.claims({"methods": methods})}
    claim = next(c for text, c in found.items() if "SAGD stage 1" in text and "CAM" in text)
    assert claim["metrics"]["gt_known_loc@0.2"]["verdict"] == "reversed"
    assert claim["metrics"]["gt_known_loc@0.2"]["diff"] == pytest.approx(-20.0)


def test_best_row_claim_names_the_winner_and_ignores_the_adaptive_duplicate():
    rows = [{"row": f"block {b}", **{k: _stat(v) for k in accuracy.CLAIM_METRICS}}
            for b, v in [(1, [10.0, 11.0, 12.0]), (2, [30.0, 31.0, 32.0]), (3, [20.0, 21.0, 22.0])]]
    rows.append({"row": "block adaptive", **{k: _stat([90.0, 91.0, 92.0]) for k in accuracy.CLAIM_METRICS}})
    claim = next(c for c in accuracy.claims({"block_size": rows}) if "Block size" in c["claim"])
    assert claim["metrics"]["gt_known_loc@0.2"]["best"] == "block 2"
    assert claim["metrics"]["gt_known_loc@0.2"]["verdict"] == "holds"


# --------------------------------------------------------------------------------------------
# Safety and sources
# --------------------------------------------------------------------------------------------
def test_fresh_refuses_to_empty_a_folder_the_benchmark_did_not_create(tmp_path, monkeypatch):
    monkeypatch.setenv("DGDM_DATA", str(tmp_path))
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "model.pt").write_text("x")
    with pytest.raises(SystemExit, match="refusing to empty"):
        run.prepare_data_dir(precious, fresh=True)
    assert (precious / "model.pt").exists()


def test_fresh_empties_a_benchmark_folder_and_resume_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DGDM_DATA", str(tmp_path))
    folder = run.prepare_data_dir(tmp_path / "bench", fresh=True)
    (folder / "results").mkdir()
    run.prepare_data_dir(folder, fresh=False)
    assert (folder / "results").exists()
    run.prepare_data_dir(folder, fresh=True)
    assert not (folder / "results").exists()
    assert os.environ["DGDM_DATA"] == str(folder)


def test_book_times_from_files_name_their_source_and_flag_missing_notebooks(tmp_path):
    nb_a, nb_b = tmp_path / "00_a.ipynb", tmp_path / "01_b.ipynb"
    nb_a.write_text("{}")
    nb_b.write_text("{}")
    build = tmp_path / "build"
    build.mkdir()
    (build / "book_times.json").write_text(json.dumps({"mode": "classroom", "seconds": {"00_a.ipynb": 12.5}}))
    times = book_cost.notebook_times([nb_a, nb_b], build, source="files", modes=("classroom", "quick"))
    assert times["classroom"]["notebooks"]["00_a.ipynb"]["seconds"] == 12.5
    assert "book_times.json" in times["classroom"]["notebooks"]["00_a.ipynb"]["source"]
    assert times["classroom"]["notebooks"]["01_b.ipynb"]["seconds"] is None
    assert times["quick"]["notebooks"]["00_a.ipynb"]["seconds"] is None  # a classroom file is not a quick time


# --------------------------------------------------------------------------------------------
# End to end, tiny
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_benchmark_writes_a_page_and_json_with_every_section(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("DGDM_QUICK", "1")  # the benchmark must force classroom mode anyway
    monkeypatch.setenv("DGDM_DATA", str(tmp_path / "elsewhere"))
    out, build = tmp_path / "out", tmp_path / "build"
    build.mkdir()
    (build / "book_times.json").write_text(json.dumps({"mode": "quick", "seconds": {"00_start_here.ipynb": 3.0}}))
    code = run.main([
        "--tiny", "--seeds", "0,1", "--groups", "methods", "--methods", "cam,sagd", "--jobs", "1", "--threads", "1",
        "--data", str(tmp_path / "data"), "--out", str(out), "--build", str(build), "--book-source", "files",
    ])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert os.environ["DGDM_QUICK"] == "0"
    assert set(results["sections_run"]) == {"accuracy", "cost", "book"}
    rows = {e["row"]: e for e in results["accuracy"]["tables"]["methods"]}
    assert set(rows) == {"CAM", "SAGD stage 1"}
    assert rows["CAM"]["n"] == 2 and len(rows["CAM"]["gt_known_loc@0.2"]["values"]) == 2
    assert results["accuracy"]["plan"]["schedule"] == {"epochs": 1, "train_size": 192, "val_size": 32, "test_size": 32}
    assert results["cost"]["devices"]["cpu"]["backbones"][0]["ratio"]["dgdm"]["median"] > 0
    assert 0 < results["cost"]["devices"]["cpu"]["forward_share"]["share"] < 1
    assert results["book"]["notebooks"]["quick"]["notebooks"]["00_start_here.ipynb"]["seconds"] == 3.0
    page = (out / "results.md").read_text()
    assert "Which of the paper's claims hold here" in page
    assert "DGDM adds" in page
    assert "No GPU was available" in page or "cuda" in results["cost"]["devices"]
    for figure in results["accuracy"]["figures"].values():
        assert (out / figure).is_file() and f"]({figure})" in page
    # The page is a function of results.json alone: re-rendering it gives the same text.
    assert run.main(["--report-only", "--out", str(out)]) == 0
    assert (out / "results.md").read_text() == page


def test_backbone_timing_gives_a_ratio_per_method_with_and_without_autocast(one_thread):
    import torch

    from benchmarks import cost

    for amp in (False, True):
        row = cost.time_backbone(cost.BackboneCase("small", 32, 2), torch.device("cpu"), reps=2, warmup=0, amp=amp)
        assert set(row["ratio"]) == {"adl", "dgdm"}
        assert row["positions"]["dgdm"] == ["block4", "block5"] and row["positions"]["cam"] == []
        assert all(r["q25"] <= r["median"] <= r["q75"] for r in row["ratio"].values())


def test_median_interval_covers_the_median_and_narrows_with_more_repetitions():
    import random

    from benchmarks import cost

    rng = random.Random(1)
    few = [1.04 + rng.gauss(0, 0.07) for _ in range(10)]
    many = [1.04 + rng.gauss(0, 0.07) for _ in range(400)]
    for values in (few, many):
        low, high = cost.median_interval(values)
        assert low <= sorted(values)[len(values) // 2] <= high
    assert cost.median_interval(many)[1] - cost.median_interval(many)[0] < (
        cost.median_interval(few)[1] - cost.median_interval(few)[0]) / 3
    assert cost.median_interval(few) == cost.median_interval(few)  # seeded


def test_cost_verdict_needs_the_whole_interval_on_one_side_of_the_target():
    from benchmarks import cost

    assert cost.verdict({"median": 1.02, "ci_low": 1.01, "ci_high": 1.04}, 1.05) == "below target"
    assert cost.verdict({"median": 1.08, "ci_low": 1.06, "ci_high": 1.10}, 1.05) == "above target"
    assert cost.verdict({"median": 1.04, "ci_low": 1.02, "ci_high": 1.07}, 1.05) == "not resolved"
    assert cost.verdict({"median": 1.06, "q25": 1.0, "q75": 1.1}, 1.05) == "above target"  # older results


def test_interleaved_timing_rotates_the_order_of_variants():
    import torch

    from benchmarks import cost

    calls: list[str] = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = cost.interleaved(steps, reps=3, warmup=0, device=torch.device("cpu"))
    assert calls == list("abc" "bca" "cab")
    assert all(len(t) == 3 for t in times.values())


def _bare_results(**sections):
    return {
        "command": "python benchmarks/run.py --only book", "generated": "today", "sections_run": list(sections),
        "machine": {"cpu_model": "cpu", "nproc": 2, "usable_cores": 2, "memory_gib": 1, "os": "Linux",
                    "torch_threads": 2, "gpu": None},
        "versions": {"torch": "x"}, **sections,
    }


def test_partial_runs_that_overlap_keep_each_others_sections(tmp_path):
    book = {"dataset": {"sizes": {"train": 4}, "seconds": {"train": 0.1}, "total_s": 0.1}}
    other = {"dataset": {"sizes": {"train": 8}, "seconds": {"train": 0.2}, "total_s": 0.2}}
    run.write(_bare_results(cost={"devices": {}}), tmp_path, keep_other_sections=True)
    run.write(_bare_results(book=book), tmp_path, keep_other_sections=True)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["cost"] == {"devices": {}} and on_disk["book"] == book
    run.write(_bare_results(book=other), tmp_path, keep_other_sections=False)  # a full run starts afresh
    assert "cost" not in json.loads((tmp_path / "results.json").read_text())


def test_report_renders_a_schedule_free_page_without_accuracy():
    results = {
        "command": "python benchmarks/run.py --only book", "generated": "today", "sections_run": ["book"],
        "machine": {"cpu_model": "cpu", "nproc": 2, "usable_cores": 2, "memory_gib": 1, "os": "Linux",
                    "torch_threads": 2, "gpu": None},
        "versions": {"torch": "x"}, "book": {"dataset": {"sizes": {"train": 4}, "seconds": {"train": 0.1}, "total_s": 0.1}},
    }
    page = report.render(results, Path("."))
    assert "The accuracy section has not been run." in page
    assert "train 4 images 0.10 s" in page
