"""Where and how torch computes: device, autocast precision and CPU threads.

Every command that runs a network (``trainunet``, ``predictunet``, ``isb``, ``dfc``,
``wnet``) picks its device, precision and threads here. Device ``auto`` picks CUDA, then
Apple MPS, then the CPU. Precision ``auto`` uses bf16 autocast on GPUs that support it
(fp16 on the others) and on CPUs with native bf16 instructions (AVX512-BF16 or AMX),
fp32 otherwise.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .protocol import EngineError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["cpu_supports_bf16", "select_device", "select_precision", "set_threads"]


def select_device(name: str = "auto") -> tuple[torch.device, str]:
    """Choose the compute device.

    Parameters
    ----------
    name : str
        ``"auto"`` (CUDA, then Apple MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``
        or ``"mps"``.

    Returns
    -------
    device : torch.device
    reason : str
        Why this device, for the log.
    """
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda"), f"CUDA GPU found: {torch.cuda.get_device_name(0)}"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps"), "Apple MPS GPU found"
        return torch.device("cpu"), "no CUDA or MPS GPU found, using the CPU"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EngineError(
                "DEVICE is cuda but PyTorch sees no CUDA GPU here. Use device auto or cpu, "
                "or install a CUDA build of PyTorch in the engine environment."
            )
        return torch.device(name), "CUDA requested"
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise EngineError("DEVICE is mps but no Apple MPS GPU is available; use auto or cpu.")
        return torch.device("mps"), "MPS requested"
    if name == "cpu":
        return torch.device("cpu"), "CPU requested"
    raise EngineError(f"Unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps.")


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); Linux only."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def select_precision(precision: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """Choose the autocast dtype: ``None`` means plain fp32.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16"}
    device : torch.device
    """
    import torch

    precision = (precision or "auto").lower()
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise EngineError(f"Unknown precision {precision!r}: use auto, fp32, bf16 or fp16.")
    if precision == "fp32":
        return None, "fp32 (requested)"
    if precision == "bf16":
        return torch.bfloat16, "bf16 autocast (requested)"
    if precision == "fp16":
        return torch.float16, "fp16 autocast (requested)"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "bf16 autocast (GPU supports bf16)"
        return torch.float16, "fp16 autocast (GPU has no bf16)"
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16, "bf16 autocast (CPU has native bf16 instructions)"
    return None, f"fp32 ({device.type} without native bf16)"


def set_threads(threads: int | None = None) -> int:
    """Set PyTorch's CPU threads: ``threads``, or every CPU this process may use."""
    import torch

    if threads is None or threads < 1:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS, Windows
            threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads
