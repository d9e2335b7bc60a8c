"""Run-time settings every notebook reads in one place: quick mode, device, seeds, data directory."""

from __future__ import annotations

import os
import platform
import random
from pathlib import Path

import numpy as np
import torch

_TRUE = {"1", "true", "yes", "on"}


def quick_mode() -> bool:
    """True when notebooks should take the short path (``DGDM_QUICK=1``, or ``CI`` set).

    Quick mode runs the same code with fewer steps; tests and CI use it.
    """
    if os.environ.get("DGDM_QUICK", "").strip().lower() in _TRUE:
        return True
    if os.environ.get("DGDM_QUICK", "").strip().lower() in {"0", "false", "no", "off"}:
        return False
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false"}


def mode_name() -> str:
    """``"quick"`` or ``"classroom"``: the name used in reports and cache keys."""
    return "quick" if quick_mode() else "classroom"


def get_device(prefer: str | None = None) -> torch.device:
    """CUDA when available (or ``DGDM_DEVICE`` / ``prefer`` says otherwise), else CPU."""
    choice = prefer or os.environ.get("DGDM_DEVICE", "")
    if choice:
        return torch.device(choice)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_offset() -> int:
    """``DGDM_SEED_OFFSET`` (default 0), added to every beetle run's seed.

    A robustness check for the book: ``DGDM_SEED_OFFSET=1 make book`` retrains every chapter with
    other seeds, so an assertion that held only by the luck of seed 0 shows up as a failure.
    """
    raw = os.environ.get("DGDM_SEED_OFFSET", "0").strip() or "0"
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"DGDM_SEED_OFFSET must be an integer, got {raw!r}") from None


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def repo_root() -> Path:
    """The folder holding ``dgdm_lib`` (the book's checkout)."""
    return Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Where datasets and cached models live: ``DGDM_DATA`` or ``<repo>/data``. Created if missing."""
    path = Path(os.environ.get("DGDM_DATA", repo_root() / "data")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def env_report() -> str:
    """One line: Python, torch, torchvision, device and mode, for the top of every notebook."""
    import torchvision

    device = get_device()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{torch.get_num_threads()}"
    return (
        f"python {platform.python_version()} | torch {torch.__version__} | "
        f"torchvision {torchvision.__version__} | device {device} ({name}) | mode {mode_name()} | "
        f"data {data_dir()}" + (f" | seed offset {seed_offset()}" if seed_offset() else "")
    )
