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
    assert f"torch {torch.__version__}" in report and "device cpu" in report


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
