"""Quick mode, device, seeding and the data directory are read in one place (dgdm_lib.config)."""

import random

import numpy as np
import pytest
import torch

from dgdm_lib import config


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, False), ({"DGDM_QUICK": "1"}, True), ({"CI": "true"}, True), ({"CI": "true", "DGDM_QUICK": "0"}, False),
     ({"CI": "false"}, False)],
)
def test_quick_mode_follows_dgdm_quick_and_ci(monkeypatch, env, expected):
    monkeypatch.delenv("DGDM_QUICK", raising=False)
    monkeypatch.delenv("CI", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert config.quick_mode() is expected
    assert config.mode_name() == ("quick" if expected else "classroom")


def test_seed_everything_makes_python_numpy_and_torch_repeat():
    def draw():
        gen = config.seed_everything(7)
        return random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=gen).item()

    assert draw() == draw()


def test_data_dir_follows_dgdm_data_and_is_created(monkeypatch, tmp_path):
    target = tmp_path / "somewhere" / "data"
    monkeypatch.setenv("DGDM_DATA", str(target))
    assert config.data_dir() == target
    assert target.is_dir()


def test_device_can_be_forced_and_report_names_it(monkeypatch):
    monkeypatch.setenv("DGDM_DEVICE", "cpu")
    assert config.get_device() == torch.device("cpu")
    report = config.env_report()
    assert "torch 2.14.1" in report and "device cpu" in report


def test_seed_offset_shifts_every_beetle_run_and_rejects_garbage(monkeypatch):
    from dgdm_lib.config import seed_offset
    from dgdm_lib.experiments import BeetleRun

    monkeypatch.delenv("DGDM_SEED_OFFSET", raising=False)
    assert seed_offset() == 0 and BeetleRun.of("cam", seed=2).seed == 2
    monkeypatch.setenv("DGDM_SEED_OFFSET", "3")
    assert BeetleRun.of("cam", seed=2).seed == 5
    assert "seed offset 3" in config.env_report()
    monkeypatch.setenv("DGDM_SEED_OFFSET", "one")
    with pytest.raises(ValueError, match="DGDM_SEED_OFFSET"):
        seed_offset()


def test_book_records_a_failing_chapter_and_runs_the_next(tmp_path, monkeypatch):
    from dgdm_lib import book

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
