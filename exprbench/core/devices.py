"""The process's compute device and software versions (recorded in status.json and eval.json)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch

from exprbench.core import __version__
from exprbench.core.errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available else ``cpu``; otherwise ``torch.device(name)``.

    Raises:
        UserError: unknown device string, or CUDA asked for but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r} (use auto, cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but CUDA is not available here")
    return dev


def library_versions() -> dict[str, str]:
    """Versions of Python, torch, torchvision, exprbench, and the git commit of the working tree."""
    import torchvision

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
            text=True, timeout=5,
        ).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "exprbench": __version__, "git_commit": commit}


def device_name(device: torch.device) -> str:
    """Human-readable device name: the GPU model, or the CPU with its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"

