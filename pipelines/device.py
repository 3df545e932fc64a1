"""Device, precision and thread choices, made once per flow run."""

from __future__ import annotations

import torch

from rnnflow.config import ConfigError


def resolve(setting: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but torch.cuda.is_available() is False")
    return torch.device(setting)


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """Mixed-precision dtype on CUDA: bf16 where supported (no scaler needed), else fp16."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def configure(device: torch.device, threads: int = 0) -> None:
    """Threads (when > 0) and repeatable kernels: deterministic CPU, TF32 matmuls on CUDA."""
    if threads > 0:
        torch.set_num_threads(threads)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
