"""The book's runs (dgdm_lib.experiments): cache keys, the recipe they train with, the same model whatever ran before."""

import pytest
import torch


def test_quick_and_classroom_share_trained_models_but_not_measurements():
    from dgdm_lib.experiments import CLASSROOM, QUICK, BeetleRun

    quick, classroom = BeetleRun.of("sagd", schedule=QUICK), BeetleRun.of("sagd", schedule=CLASSROOM)
    assert (QUICK.epochs, QUICK.train_size) == (CLASSROOM.epochs, CLASSROOM.train_size)
    assert quick.key() == classroom.key()
    assert quick.result_key() != classroom.result_key()
    assert BeetleRun.of("sagd", seed=1).key() != quick.key()
    assert BeetleRun.of("sagd", delta_h=0.7).key() != quick.key()


def test_test_batch_is_the_start_of_the_test_split(monkeypatch, tmp_path):
    from dgdm_lib.experiments import BeetleRun, Schedule, beetle_loader, test_batch

    monkeypatch.setenv("DGDM_DATA", str(tmp_path))
    run = BeetleRun.of("cam", schedule=Schedule(epochs=1, train_size=8, val_size=8, test_size=12))
    images, targets = test_batch(run, 5)
    all_images, all_targets = next(iter(beetle_loader(run, "test", batch_size=12)))
    assert images.shape[0] == 5
    assert torch.equal(images, all_images[:5]) and torch.equal(targets["label"], all_targets["label"][:5])


def test_bn_recalibrated_run_starts_from_the_plain_run_and_changes_only_batchnorm_statistics(monkeypatch, tmp_path):
    from dgdm_lib import training
    from dgdm_lib.experiments import BeetleRun, Schedule, trained_model

    monkeypatch.setenv("DGDM_DATA", str(tmp_path))
    fits = []
    real_train = training.train
    monkeypatch.setattr(training, "train", lambda *a, **k: fits.append(k.get("bn_recalibrate")) or real_train(*a, **k))
    tiny = Schedule(epochs=1, train_size=64, val_size=8, test_size=8)
    plain = trained_model(BeetleRun.of("sagd", schedule=tiny), progress=False)
    recalibrated = trained_model(BeetleRun.of("sagd", schedule=tiny, bn_recalibrate=True), progress=False)
    assert fits == [False], "the recalibrated run trains nothing: it starts from the cached plain run"
    before, after = plain.state_dict(), recalibrated.state_dict()
    moved = {name for name in before if not torch.equal(before[name], after[name])}
    assert moved and all(name.endswith(("running_mean", "running_var", "num_batches_tracked")) for name in moved)
    assert recalibrated.train_result["seconds"] >= plain.train_result["seconds"]


def test_a_run_trains_the_same_network_whatever_drew_random_numbers_before(monkeypatch, tmp_path):
    from dgdm_lib.experiments import BeetleRun, Schedule, trained_model

    tiny = Schedule(epochs=1, train_size=64, val_size=8, test_size=8)
    monkeypatch.setenv("DGDM_DATA", str(tmp_path / "first"))
    first = trained_model(BeetleRun.of("cam", schedule=tiny), progress=False).state_dict()
    monkeypatch.setenv("DGDM_DATA", str(tmp_path / "again"))  # an empty cache: train again
    torch.rand(1000)
    again = trained_model(BeetleRun.of("cam", schedule=tiny), progress=False).state_dict()
    assert all(torch.equal(first[name], again[name]) for name in first)


def test_every_recipe_field_changes_the_cached_models_key_of_a_beetle_and_a_photo_run(tmp_path) -> None:
    import dataclasses

    from dgdm_lib.experiments import BeetleRun
    from dgdm_lib.photos import PhotoRun
    from dgdm_lib.training import Recipe

    changed = {"optimizer": "sgd", "lr": 1e-2, "schedule": "cosine", "weight_decay": 0.0, "momentum": 0.5,
               "new_layer_lr_mult": 1.0, "batch_size": 32, "hflip": False}
    assert set(changed) == {f.name for f in dataclasses.fields(Recipe)}, "a new Recipe field needs a case here"
    beetle = BeetleRun.of("cam")
    for name, value in changed.items():
        assert dataclasses.replace(beetle, recipe=dataclasses.replace(beetle.recipe, **{name: value})).key() != beetle.key()
    photo = PhotoRun.of("cam")
    for name in ("lr", "batch_size", "epochs", "freeze", "image_size"):
        other = dataclasses.replace(photo, **{name: {"lr": 0.02, "batch_size": 16, "epochs": 3, "freeze": None,
                                                    "image_size": 160}[name]})
        assert other.key(tmp_path) != photo.key(tmp_path), name


def test_the_book_trains_with_its_runs_recipe(monkeypatch) -> None:
    from dgdm_lib import experiments
    from dgdm_lib.training import Recipe

    seen = {}

    def fake_train(model, loader, **kwargs):
        seen.update(kwargs, batch_size=loader.batch_size, hflip=loader.hflip)
        raise RuntimeError("stop")

    monkeypatch.setattr("dgdm_lib.training.train", fake_train)
    monkeypatch.setattr("dgdm_lib.training.train_or_load", lambda name, build, fit, config: fit(None))
    recipe = Recipe(optimizer="sgd", lr=0.05, schedule="step", batch_size=16, hflip=False)
    run = experiments.BeetleRun.of("cam", recipe=recipe)
    with pytest.raises(RuntimeError, match="stop"):
        experiments.trained_model(run, progress=False)
    assert {k: seen[k] for k in recipe.train_arguments()} == recipe.train_arguments()
    assert (seen["batch_size"], seen["hflip"]) == (16, False)


@pytest.mark.parametrize("method", ["cam", "dgdm"])
def test_a_book_run_and_its_command_line_form_train_the_same_network(monkeypatch, tmp_path, method):
    """One run configuration: ``BeetleRun.run_config()`` run by the command line's ``run_one``."""
    from dgdm_lib.cli import run_one
    from dgdm_lib.experiments import BeetleRun, Schedule, trained_model
    from dgdm_lib.training import load_checkpoint

    monkeypatch.setenv("DGDM_DATA", str(tmp_path / "data"))
    tiny = Schedule(epochs=1, train_size=64, val_size=8, test_size=8)
    run = BeetleRun.of(method, schedule=tiny, **({"delta_h": 0.7} if method == "dgdm" else {}))
    book = trained_model(run, progress=False).state_dict()
    cfg = run.run_config().replace(out=str(tmp_path / "run"), evaluate=False, progress=False)
    assert dict(cfg.module_args) == dict(run.module_kwargs) and cfg.recipe == run.recipe
    run_one(cfg)
    cli = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    assert book.keys() == cli.keys() and all(torch.equal(book[k], cli[k]) for k in book)


def test_bench_claim_reads_a_verdict_of_docs_results_json_or_none() -> None:
    from dgdm_lib.experiments import bench_claim, bench_claims

    found = bench_claim("SAGD stage 1", "CAM", "gt_known_loc@0.2")
    assert found is not None and found["verdict"] in {"holds", "not shown", "reversed"}
    low, high = found["ci95"]
    assert low <= found["diff"] <= high
    assert bench_claim("CAM", "SAGD stage 1", "gt_known_loc@0.2") is None  # only the stated direction
    assert all({"claim", "better", "baseline", "metrics"} <= set(c) for c in bench_claims())


def test_bench_tables_hold_per_seed_values_and_the_plain_rows_by_method() -> None:
    from dgdm_lib.experiments import bench_rows_by_method, bench_table, bench_values

    rows = bench_rows_by_method()
    assert {"cam", "adl", "sagd", "sagd12", "dgdm"} <= set(rows) and not any(r["kwargs"] for r in rows.values())
    assert rows["cam"]["gt_known_loc@0.2"]["values"] == bench_values(rows["cam"]["row"], "gt_known_loc@0.2")
    assert {r["row"] for r in bench_table("block_size")} >= {"block 2", "block 3"}
    assert bench_table("no such table") == []
