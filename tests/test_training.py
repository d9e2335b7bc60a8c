"""Training loop, checkpoints, exact resume, BatchNorm re-estimation and the model cache."""

from __future__ import annotations

import os

import pytest
import torch

from dgdm_lib.data.loaders import BeetlesLoader, epoch_draws
from dgdm_lib.models import build_model
from dgdm_lib.training import (
    CHECKPOINT_NAME,
    DistributedBatches,
    build_optimizer,
    build_scheduler,
    load_checkpoint,
    recalibrate_batchnorm,
    save_checkpoint,
    train,
    train_or_load,
)


class TinyTensors:
    """An in-memory split of coloured 16x16 images: the label is the brightest channel (0..2)."""

    def __init__(self, n: int = 48, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 3, (n,), generator=g)
        self.images = torch.randn(n, 3, 16, 16, generator=g) * 0.5
        self.images[torch.arange(n), self.labels] += 1.5

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: torch.Tensor, flip: torch.Tensor | None = None):
        images = self.images[indices]
        if flip is not None:
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        return images, {"label": self.labels[indices], "boxes": [torch.tensor([[0.0, 0.0, 16.0, 16.0]])] * len(indices)}


class ShuffledLoader:
    """Like the beetles fast loader: reshuffles every pass from its own generator."""

    def __init__(self, data: TinyTensors, batch_size: int = 16, seed: int = 0, crash_at_epoch: int | None = None):
        self.data, self.batch_size = data, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.crash_at_epoch, self.passes = crash_at_epoch, 0

    def __len__(self) -> int:
        return (len(self.data) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        self.passes += 1
        if self.crash_at_epoch is not None and self.passes == self.crash_at_epoch:
            raise KeyboardInterrupt("simulated preemption")
        order = torch.randperm(len(self.data), generator=self.generator)
        flips = torch.rand(len(self.data), generator=self.generator) < 0.5
        for start in range(0, len(order), self.batch_size):
            yield self.data.batch(order[start : start + self.batch_size], flips[start : start + self.batch_size])


def _run(tmp_path, name: str, seed_model: int = 0, loader_seed: int = 0, crash_at_epoch=None, resume=False,
         module_generator: bool = False, epochs: int = 2, **kw):
    torch.manual_seed(seed_model)
    extra = {"generator": torch.Generator().manual_seed(seed_model + 5)} if module_generator else {}
    model = build_model("small", "dgdm", num_classes=3, **extra)
    loader = ShuffledLoader(TinyTensors(), seed=loader_seed, crash_at_epoch=crash_at_epoch)
    result = train(model, loader, epochs=epochs, lr=5e-3, progress=False, checkpoint_dir=tmp_path / name,
                   resume=resume, seed=7, **kw)
    return model, result


@pytest.mark.parametrize("module_generator", [False, True], ids=["global-rng", "module-generator"])
def test_resume_after_a_crash_gives_the_same_next_step_loss_and_weights(tmp_path, module_generator: bool) -> None:
    full_model, full = _run(tmp_path, "full", module_generator=module_generator)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "crashed", crash_at_epoch=2, module_generator=module_generator)
    assert load_checkpoint(tmp_path / "crashed" / CHECKPOINT_NAME)["epoch"] == 1
    # A different initialisation and loader seed: everything must come from the checkpoint.
    resumed_model, resumed = _run(tmp_path, "crashed", seed_model=123, loader_seed=99, resume=True,
                                  module_generator=module_generator)
    steps = len(full.step_losses) // 2
    assert resumed.resumed_from_epoch == 1
    assert resumed.step_losses[steps] == full.step_losses[steps]  # the first step after the crash
    assert resumed.step_losses == full.step_losses
    for a, b in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_resume_with_different_settings_is_refused(tmp_path) -> None:
    _run(tmp_path, "run")
    with pytest.raises(ValueError, match=r"settings differ \(lr: checkpoint 0.005 vs now 0.001\)"):
        model = build_model("small", "cam", num_classes=3)
        train(model, ShuffledLoader(TinyTensors()), epochs=2, lr=1e-3, progress=False,
              checkpoint_dir=tmp_path / "run", resume=True, seed=7)


def test_training_lowers_the_loss_and_reports_each_epoch(tmp_path) -> None:
    _, result = _run(tmp_path, "run", epochs=3)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.steps == 9 and result.seconds > 0


def test_checkpoint_write_never_leaves_a_half_written_file(tmp_path, monkeypatch) -> None:
    path = save_checkpoint(tmp_path / CHECKPOINT_NAME, {"epoch": 1})

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == [CHECKPOINT_NAME]


def test_new_layers_get_ten_times_the_learning_rate_when_fine_tuning() -> None:
    model = build_model("small", num_classes=3)
    assert [g["lr"] for g in build_optimizer(model, "sgd", lr=0.01).param_groups] == [0.01]
    model.pretrained_keys = frozenset(n for n, _ in model.named_parameters() if n.startswith("features."))
    groups = build_optimizer(model, "sgd", lr=0.01).param_groups
    assert [(g["name"], g["lr"]) for g in groups] == [("pretrained", 0.01), ("new", pytest.approx(0.1))]
    assert {id(p) for p in groups[1]["params"]} == {id(model.classifier.weight), id(model.classifier.bias)}


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "step", "constant"])
def test_every_schedule_runs_per_step_and_onecycle_peaks_at_the_given_lr(schedule: str) -> None:
    model = build_model("small", num_classes=3)
    opt = build_optimizer(model, "adamw", lr=0.01)
    sched = build_scheduler(opt, schedule, epochs=2, steps_per_epoch=10)
    rates = []
    for _ in range(20):
        opt.step()
        sched.step()
        rates.append(opt.param_groups[0]["lr"])
    assert max(rates) <= 0.01 + 1e-12
    if schedule == "onecycle":
        assert max(rates) == pytest.approx(0.01, rel=0.05) and rates[-1] < 0.01 * 0.05


def test_bn_recalibration_gives_the_statistics_of_the_unerased_network() -> None:
    torch.manual_seed(0)
    cam, adl = build_model("small", "cam", num_classes=3), build_model("small", "adl", num_classes=3, drop_rate=1.0)
    adl.load_state_dict(cam.state_dict())
    batches = [TinyTensors(32, seed=s).batch(torch.arange(32)) for s in (1, 2)]
    with torch.no_grad():  # train-mode passes with erasing move the BN statistics of block5
        for images, _ in batches:
            adl.train()(images)
    assert recalibrate_batchnorm(cam, batches) == 2
    assert recalibrate_batchnorm(adl, batches) == 2
    for name in ("block4", "block5"):
        bn_cam, bn_adl = getattr(cam.features, name)[1], getattr(adl.features, name)[1]
        torch.testing.assert_close(bn_adl.running_mean, bn_cam.running_mean)
        torch.testing.assert_close(bn_adl.running_var, bn_cam.running_var)
    assert adl.features.block5[1].momentum == 0.1  # restored


def test_amp_bf16_runs_on_cpu_and_channels_last_can_be_turned_off(tmp_path) -> None:
    model = build_model("small", num_classes=3)
    result = train(model, ShuffledLoader(TinyTensors(16)), epochs=1, amp="bf16", channels_last=False, progress=False)
    assert result.steps == 1 and torch.isfinite(torch.tensor(result.step_losses)).all()


def test_train_or_load_trains_once_per_configuration(tmp_path) -> None:
    calls = []

    def build():
        torch.manual_seed(0)
        return build_model("small", "cam", num_classes=3)

    def fit(model):
        calls.append(1)
        return train(model, ShuffledLoader(TinyTensors(16)), epochs=1, progress=False)

    config = {"arch": "small", "method": "cam", "epochs": 1, "seed": 0}
    first = train_or_load("tiny", build, fit, config, cache_dir=tmp_path)
    again = train_or_load("tiny", build, fit, config, cache_dir=tmp_path)
    assert len(calls) == 1
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b)
    train_or_load("tiny", build, fit, {**config, "epochs": 2}, cache_dir=tmp_path)
    assert len(calls) == 2  # stale: the configuration changed
    (tmp_path / "tiny.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable cached model"):
        train_or_load("tiny", build, fit, {**config, "epochs": 2}, cache_dir=tmp_path)
    assert len(calls) == 3


def test_distributed_batches_give_each_rank_a_disjoint_share_of_every_epoch() -> None:
    data = TinyTensors(10)
    data.images = torch.arange(10.0)[:, None, None, None].expand(10, 3, 2, 2).clone()
    shards = [DistributedBatches(data, batch_size=2, hflip=False, seed=3, rank=r, world_size=2) for r in (0, 1)]
    seen = [[int(x) for images, _ in shard for x in images[:, 0, 0, 0]] for shard in shards]
    assert len(seen[0]) == len(seen[1]) == 5 and len(shards[0]) == 3
    assert sorted(seen[0] + seen[1]) == list(range(10))
    for shard in shards:
        shard.set_epoch(1)
    assert [int(x) for images, _ in shards[0] for x in images[:, 0, 0, 0]] != seen[0]


def test_epoch_draws_are_the_passes_of_one_running_generator() -> None:
    """``epoch_draws(seed, e)`` on its own equals the e-th pass of a generator seeded once."""
    running = torch.Generator().manual_seed(11)
    for epoch in range(4):
        order, flips = torch.randperm(30, generator=running), torch.rand(30, generator=running) < 0.5
        again, again_flips = epoch_draws(30, seed=11, epoch=epoch)
        assert torch.equal(order, again) and torch.equal(flips, again_flips)
    assert not torch.equal(epoch_draws(30, 11, 0)[0], epoch_draws(30, 12, 0)[0])
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        epoch_draws(30, 11, -1)


def test_one_rank_of_distributed_batches_is_the_in_memory_loader() -> None:
    """One sampler: a one-process torchrun run sees the batches of a plain run, epoch by epoch."""
    data = TinyTensors(21)
    plain = BeetlesLoader(data, batch_size=4, shuffle=True, hflip=True, seed=5)
    sharded = DistributedBatches(data, batch_size=4, seed=5, rank=0, world_size=1)
    for epoch in range(3):
        plain.set_epoch(epoch)
        sharded.set_epoch(epoch)
        for (a, ta), (b, tb) in zip(plain, sharded, strict=True):
            assert torch.equal(a, b) and torch.equal(ta["label"], tb["label"])


def test_in_memory_loader_takes_the_next_epoch_on_each_pass_without_set_epoch() -> None:
    data = TinyTensors(12)
    loader = BeetlesLoader(data, batch_size=12, shuffle=True, seed=2)
    first, second = (next(iter(loader))[1]["label"] for _ in range(2))
    loader.set_epoch(1)
    assert torch.equal(next(iter(loader))[1]["label"], second) and not torch.equal(first, second)
