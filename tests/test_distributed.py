"""DistributedDataParallel on CPU: gloo backend, 2 processes, tiny data.

What must hold for ILSVRC-size runs: every rank ends with the same weights, epoch metrics are
reduced across ranks (identical histories), only rank 0 writes, and the command line works
under torchrun unchanged.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Tensors:
    def __init__(self, n: int = 40) -> None:
        g = torch.Generator().manual_seed(0)
        self.labels = torch.randint(0, 3, (n,), generator=g)
        self.images = torch.randn(n, 3, 16, 16, generator=g)
        self.images[torch.arange(n), self.labels] += 1.0

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices, flip=None):
        return self.images[indices], {"label": self.labels[indices], "boxes": [torch.zeros(1, 4)] * len(indices)}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    torch.set_num_threads(1)
    from dgdm_lib.data.loaders import DistributedBatches
    from dgdm_lib.distributed import init_distributed
    from dgdm_lib.models import build_model
    from dgdm_lib.training import train

    info = init_distributed("cpu")
    torch.manual_seed(100 + rank)  # different initial weights per rank: DDP must broadcast rank 0's
    model = build_model("small", "dgdm", num_classes=3)
    loader = DistributedBatches(_Tensors(), batch_size=8, seed=0)
    result = train(model, loader, epochs=2, device="cpu", progress=False, checkpoint_dir=Path(out) / "ckpt")
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.save({"params": flat, "history": [(h["loss"], h["acc"]) for h in result.history],
                "world": info.world_size, "steps": result.steps}, Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_two_gloo_processes_end_with_identical_weights_and_reduced_metrics(tmp_path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert rank0["world"] == rank1["world"] == 2
    assert rank0["steps"] == rank1["steps"] == 2 * 3  # 40 images / 2 ranks / batch 8 = 3 steps an epoch
    torch.testing.assert_close(rank0["params"], rank1["params"])
    assert rank0["history"] == rank1["history"]
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["checkpoint.pt"]


def test_the_command_line_trains_under_torchrun_with_two_cpu_processes(tmp_path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "DGDM_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1", "DGDM_DEVICE": "cpu"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
        "-m", "dgdm_lib", "train", "--arch", "small", "--method", "adl", "--dataset", "beetles",
        "--train-size", "128", "--val-size", "32", "--test-size", "32", "--epochs", "1", "--batch-size", "32",
        "--no-progress", "--threads", "1", "--out", str(out),
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert config["world_size"] == 2
    assert metrics["train"]["steps"] == 2  # 128 images / 2 ranks / batch 32
    assert {"top1_clas", "gt_known_loc@0.2", "maxboxacc"} <= set(metrics["metrics"])
    assert (out / "cams.png").is_file() and (out / "checkpoint.pt").is_file()
