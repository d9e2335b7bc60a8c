"""Checkpoints hold tensors and plain values only: nothing in a checkpoint file runs code, and a
damaged file or one left by a killed writer is reported or cleaned up, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import ShuffledLoader, TinyTensors

from dgdm_lib import cli
from dgdm_lib.models import build_model
from dgdm_lib.training import (
    CHECKPOINT_NAME,
    CheckpointError,
    ResumeMismatchError,
    load_checkpoint,
    save_checkpoint,
    train,
    train_or_load,
)


class Payload:
    """Pickles as a call of ``os.mkdir(marker)``: loading it with plain pickle creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _train(folder: Path, epochs: int = 1, resume: bool = False, extra=None):
    torch.manual_seed(0)
    model = build_model("small", "dgdm", num_classes=3)
    return train(model, ShuffledLoader(TinyTensors(16)), epochs=epochs, lr=5e-3, progress=False,
                 checkpoint_dir=folder, resume=resume, seed=7, extra_state=extra)


def _plant_payload(path: Path, marker: Path) -> Path:
    torch.save({"format": 1, "epoch": 1, "model": {}, "extra": {"config": Payload(marker)}}, path)
    return path


def test_a_training_checkpoint_loads_with_weights_only(tmp_path) -> None:
    config = {"out": tmp_path / "run", "module_args": [["beta", 3.0]], "tau": np.float64(0.2), "seeds": (0, 1)}
    _train(tmp_path / "run", extra={"config": config})
    state = torch.load(tmp_path / "run" / CHECKPOINT_NAME, weights_only=True)
    assert state["extra"]["config"] == {"out": str(tmp_path / "run"), "module_args": [["beta", 3.0]], "tau": 0.2,
                                        "seeds": (0, 1)}
    assert isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(tmp_path) -> None:
    marker = tmp_path / "payload-ran"
    path = _plant_payload(tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*posix\.mkdir.*tensors and plain values") as caught:
        load_checkpoint(path)
    assert isinstance(caught.value, ResumeMismatchError)  # the command line prints it as one error line
    assert not marker.exists()


def test_evaluate_and_resume_refuse_a_payload_with_one_error_line(tmp_path, capsys) -> None:
    marker = tmp_path / "payload-ran"
    path = _plant_payload(tmp_path / "evil.pt", marker)
    assert cli.main(["evaluate", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot load checkpoint") and str(path) in err and len(err.splitlines()) == 1
    run = tmp_path / "run"
    run.mkdir()
    _plant_payload(run / CHECKPOINT_NAME, marker)
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        _train(run, resume=True)
    assert not marker.exists()


def test_a_planted_cached_model_is_ignored_retrained_and_overwritten(tmp_path) -> None:
    marker = tmp_path / "payload-ran"
    _plant_payload(tmp_path / "tiny.pt", marker)
    calls = []

    def fit(model):
        calls.append(1)
        return train(model, ShuffledLoader(TinyTensors(16)), epochs=1, progress=False)

    with pytest.warns(UserWarning, match=r"unreadable cached model .*tiny\.pt.*posix\.mkdir"):
        train_or_load("tiny", lambda: build_model("small", "cam", num_classes=3), fit, {"seed": 0}, cache_dir=tmp_path)
    assert calls == [1] and not marker.exists()
    assert torch.load(tmp_path / "tiny.pt", weights_only=True)["config"] == {"seed": 0}


def _damaged(kind: str, path: Path) -> Path:
    save_checkpoint(path, {"epoch": 1, "model": {"w": torch.arange(4096.0)}})
    data = path.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        path.write_text("not a checkpoint")
    else:  # one byte of the zip directory at the end
        path.write_bytes(data[:-30] + bytes([data[-30] ^ 0xFF]) + data[-29:])
    return path


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "flipped"])
def test_a_damaged_checkpoint_gives_one_clear_error(tmp_path, kind: str, capsys) -> None:
    path = _damaged(kind, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match=rf"cannot load checkpoint {path}: .*(empty|damaged).*[Tt]rain again"):
        load_checkpoint(path)
    assert cli.main(["evaluate", "--checkpoint", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot load checkpoint {path}")


def test_a_file_that_is_not_a_training_checkpoint_is_refused_by_name(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"w": torch.ones(2)}, run / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: it holds no .*'optimizer'"):
        _train(run, resume=True)


_KILLED_WRITER = """
import os, signal, sys, torch
from dgdm_lib.training import save_checkpoint

def dying_save(obj, handle):
    os.kill(os.getpid(), signal.SIGKILL)

torch.save = dying_save
save_checkpoint(sys.argv[1], {"epoch": 1})
"""


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_writer_killed_mid_write_leaves_a_temporary_file_that_later_writes_remove(tmp_path) -> None:
    path = tmp_path / CHECKPOINT_NAME
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(path)], capture_output=True)
    assert done.returncode == -9
    (leftover,) = tmp_path.iterdir()
    assert leftover.name.startswith(f".{CHECKPOINT_NAME}.") and leftover.stat().st_size == 0
    save_checkpoint(path, {"epoch": 1})
    assert leftover.exists(), "a fresh temporary file may still be written"
    _age(leftover, 120)
    save_checkpoint(path, {"epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]

    live = tmp_path / f".{CHECKPOINT_NAME}.{os.getpid()}.abcd1234.tmp"  # a running writer's (ours)
    dead = tmp_path / f".{CHECKPOINT_NAME}.{_dead_pid()}.efgh5678.tmp"
    for temporary in (live, dead):
        temporary.write_bytes(b"")
        _age(temporary, 120)
    assert load_checkpoint(path)["epoch"] == 2
    assert live.exists() and not dead.exists()


def _dead_pid() -> int:
    """The PID of a process that has exited."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)
