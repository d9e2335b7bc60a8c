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
    for name in ("DGDM_CUB_ROOT", "DGDM_IMAGENET_ROOT"):  # photos: no images, so that part is skipped (its own test)
        monkeypatch.setenv(name, str(tmp_path / "no_images"))
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
    assert set(results["sections_run"]) == {"accuracy", "cost", "book", "photos"}
    assert "No CUB-200-2011 here" in results["photos"]["cub"]["skipped"]
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


# --------------------------------------------------------------------------------------------
# Real photographs
# --------------------------------------------------------------------------------------------
def _photo_runs():
    """Three seeds of CAM and DGDM: DGDM clearly better at tau 0.2, within noise at the val tau."""
    values = {
        "cam": {"top1_clas": [80.0, 81.0, 82.0], "gt_known_loc@0.2": [50.0, 51.0, 52.0],
                "gt_known_loc@tau_val": [50.0, 55.0, 60.0], "maxboxacc_v2": [40.0, 41.0, 42.0]},
        "dgdm": {"top1_clas": [80.5, 81.0, 81.5], "gt_known_loc@0.2": [60.0, 61.0, 62.0],
                 "gt_known_loc@tau_val": [52.0, 50.0, 61.0], "maxboxacc_v2": [30.0, 31.0, 32.0]},
    }
    return [{"method": m, "seed": s, "tau_val": 0.25, "train_seconds": 60.0 + s, "mean_epoch_s": 10.0 + s,
             "positions": [] if m == "cam" else ["stage6", "stage7"], "trained_now": True,
             **{k: v[s] for k, v in values[m].items()}} for m in values for s in range(3)]


def _photos_results():
    from benchmarks import photos

    runs = _photo_runs()
    table = photos.summarize_runs(runs, ("cam", "dgdm"))
    speed_variant = {"trainable_parameters": 3_300_000, "parameters": 3_370_000, "timed_epochs": [2, 3, 4, 5, 6],
                     "top1_clas": 80.0, "gt_known_loc@0.2": 50.0, "gt_known_loc@tau_val": 51.0, "maxboxacc_v2": 40.0}
    return {
        "plan": {"classes": 10, "epochs": 6, "seeds": [0, 1, 2], "methods": ["cam", "dgdm"], "baseline": "cam",
                 "tau": 0.2, "top1_margin": 1.0},
        "protocol": {"boxes": "reference", "upsample": "bicubic"},
        "imagenet": {"root": "/imagenet", "images": 500, "tau": 0.2, "top1_clas": 71.2, "gt_known_loc@0.2": 55.5,
                     "maxboxacc": 60.1, "best_tau": 0.15, "maxboxacc_v2": 58.3, "box_ratio_median": 0.61,
                     "box_ratio_below_1": 77.0, "torch_threads": 2, "seconds": 41.0},
        "cub": {"root": "/cub", "backbone": "EfficientNet-Lite0, stride-1 stage6.", "species": ["Black_footed_Albatross"],
                "images": {"train": 250, "val": 50, "test": 290},
                "recipe": {"classes": 10, "epochs": 6, "freeze": "stage3", "image_size": 224, "resize": 256,
                           "batch_size": 32, "lr": 0.01, "val_per_class": 5, "positions": ["stage6", "stage7"],
                           "optimizer": "sgd", "schedule": "onecycle"},
                "runs": runs, "table": table, "vs_baseline": photos.compare_to_baseline(table), "trained_now": 6},
        "speed": {"method": "cam", "method_name": "CAM", "seed": 0, "torch_threads": 2, "load_before": [1.0, 1.0, 1.0],
                  "variants": {
                      "fast": {**speed_variant, "freeze": "stage3", "epoch_seconds": [14.0, 10.0, 10.5, 9.5, 10.0, 10.2],
                               "median_epoch_s": 10.0, "train_seconds": 64.2},
                      "plain": {**speed_variant, "freeze": None, "trainable_parameters": 3_370_000,
                                "epoch_seconds": [30.0, 25.0, 25.0, 24.0, 26.0, 25.0], "median_epoch_s": 25.0,
                                "train_seconds": 155.0, "top1_clas": 81.5, "maxboxacc_v2": 39.0}},
                  "speedup": 2.5, "accuracy_cost": {"top1_clas": -1.5, "gt_known_loc@0.2": 0.0,
                                                    "gt_known_loc@tau_val": 0.0, "maxboxacc_v2": 1.0}},
    }


def test_photo_comparisons_use_the_claims_interval_and_verdict():
    from benchmarks import photos

    table = photos.summarize_runs(_photo_runs(), ("cam", "dgdm"))
    cam = next(row for row in table if row["method"] == "cam")
    assert cam["n"] == 3 and cam["gt_known_loc@0.2"]["mean"] == pytest.approx(51.0)
    assert cam["gt_known_loc@0.2"]["sd"] == pytest.approx(1.0) and cam["gt_known_loc@0.2"]["ci95"][0] < 51.0
    (dgdm,) = photos.compare_to_baseline(table)
    expected = accuracy.difference([60.0, 61.0, 62.0], [50.0, 51.0, 52.0])
    assert dgdm["metrics"]["gt_known_loc@0.2"]["ci95"] == pytest.approx(expected["ci95"])
    assert dgdm["metrics"]["gt_known_loc@0.2"]["verdict"] == "holds"
    assert dgdm["metrics"]["gt_known_loc@tau_val"]["verdict"] == "not shown"
    assert dgdm["metrics"]["maxboxacc_v2"]["verdict"] == "reversed"
    top1 = accuracy.difference([80.5, 81.0, 81.5], [80.0, 81.0, 82.0])
    assert dgdm["metrics"]["top1_clas"]["verdict"] == accuracy.verdict(top1, margin=photos.TOP1_MARGIN)


def test_photos_section_renders_tables_verdicts_and_speed_from_the_results():
    results = _bare_results(photos=_photos_results())
    page = report.render(results, Path("."))
    section = page[page.index("## Real photographs"):page.index("## Protocol notes")]
    assert "| 500 | 71.2 | 55.5 | 60.1 (0.15) | 58.3 | 0.61 | 77% |" in section
    rows = {line.split(" | ")[0]: line for line in section.splitlines() if line.startswith("| ")}
    assert rows["| CAM"].startswith("| CAM | 3 | 81.0 ± 1.0 [")
    assert rows["| DGDM"].startswith("| DGDM | 3 | ")
    diff = results["photos"]["cub"]["vs_baseline"][0]["metrics"]["gt_known_loc@0.2"]
    assert f"| DGDM vs CAM | {report.signed(diff)} **holds** |" in section
    assert "**not shown**" in section and "**reversed**" in section
    assert "- DGDM localises birds better than CAM: at tau 0.2 **holds**" in section
    assert "**2.50x** as fast" in section
    assert "| fast (frozen through stage3) | 3.30 M of 3.37 M | 10.0 | 14.0, 10.0, 10.5, 9.5, 10.0, 10.2 |" in section
    assert "Top-1 Clas -1.5" in section
    assert "modules after stage6, stage7; backbone frozen through stage3; SGD lr 0.01 one-cycle" in section
    assert "6 epochs" in section and "first 10 CUB species" in section and "5 training images per species" in section
    assert "Seeds (training): 0, 1, 2 (photos)" in page
    assert "Scored with `reference` boxes and bicubic CAM upsampling" in section


def test_skipped_photo_parts_print_why():
    why_cub, why_net = "No CUB-200-2011 here: set DGDM_CUB_ROOT", "No ILSVRC validation images here"
    photos = {"plan": {"seeds": [0], "tau": 0.2}, "protocol": {"boxes": "reference", "upsample": "bicubic"},
              "imagenet": {"skipped": why_net}, "cub": {"skipped": why_cub}, "speed": {"skipped": why_cub}}
    page = report.render(_bare_results(photos=photos), Path("."))
    assert f"Skipped: {why_net}" in page
    assert page.count(f"Skipped: {why_cub}") == 2


def test_report_only_renders_older_results_without_photos(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(_bare_results(cost={"devices": {}})))
    assert run.main(["--report-only", "--out", str(tmp_path)]) == 0
    assert "Real photographs" not in (tmp_path / "results.md").read_text()


def test_photos_options_and_tiny_plan():
    args = run.parse_args(["--only", "photos", "--tiny"])
    assert args.only == ("photos",) and "photos" in run.parse_args([]).only
    plan = run.photo_plan(args)
    assert (plan.classes, plan.epochs, plan.seeds, plan.methods, plan.imagenet_limit) == (2, 1, (0,), ("cam", "dgdm"), 20)
    full = run.photo_plan(run.parse_args(["--photo-classes", "5", "--photo-methods", "cam,adl", "--seeds", "3,4"]))
    assert (full.classes, full.epochs, full.seeds, full.methods, full.imagenet_limit) == (5, 6, (3, 4), ("cam", "adl"), None)
    with pytest.raises(SystemExit):
        run.parse_args(["--photo-methods", "cam,nope"])


def test_photos_section_skips_missing_images_without_training(tmp_path, monkeypatch):
    import dgdm_lib.photos as library

    monkeypatch.setenv("DGDM_DATA", str(tmp_path))
    monkeypatch.setenv("DGDM_CUB_ROOT", str(tmp_path / "no_cub"))
    monkeypatch.setenv("DGDM_IMAGENET_ROOT", "")

    def must_not_run(*args, **kwargs):
        raise AssertionError("the photos section trained or loaded a model without images")

    for name in ("measure_photo_run", "finetuned_model", "imagenet_model", "photo_loaders"):
        monkeypatch.setattr(library, name, must_not_run)
    out = run.section_photos(run.parse_args(["--tiny", "--only", "photos"]))
    assert out["imagenet"] == {"skipped": library.missing_message("imagenet")}
    assert out["cub"] == {"skipped": library.missing_message("cub")}
    assert out["speed"] == {"skipped": library.missing_message("cub")}
    assert "Skipped: No CUB-200-2011 here" in report.render(_bare_results(photos=out), Path("."))


@pytest.mark.slow
def test_tiny_photos_benchmark_fine_tunes_and_times_both_recipes(tmp_path, monkeypatch):
    """About a minute on 2 cores; needs DGDM_CUB_ROOT and DGDM_IMAGENET_ROOT (or the data folder's copies)."""
    from dgdm_lib.photos import cub_root, imagenet_root

    if cub_root() is None or imagenet_root() is None:
        pytest.skip("no CUB / ILSVRC images on this machine (DGDM_CUB_ROOT, DGDM_IMAGENET_ROOT)")
    out = tmp_path / "out"
    assert run.main(["--tiny", "--only", "photos", "--data", str(tmp_path / "data"), "--out", str(out)]) == 0
    photos = json.loads((out / "results.json").read_text())["photos"]
    assert photos["imagenet"]["images"] == 20
    assert [row["method"] for row in photos["cub"]["table"]] == ["cam", "dgdm"]
    assert photos["cub"]["recipe"]["positions"] == ["stage6", "stage7"]
    assert photos["speed"]["speedup"] > 0 and photos["speed"]["variants"]["plain"]["freeze"] is None
    page = (out / "results.md").read_text()
    assert "## Real photographs" in page and "| DGDM vs CAM |" in page
