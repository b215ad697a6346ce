"""The ``DEVICE`` parameter: the compute devices offered to the engine.

QGIS's side does not import torch, so it lists devices from what the system shows:
NVIDIA GPUs under ``/proc/driver/nvidia/gpus`` (Linux) or from ``nvidia-smi -L``
(elsewhere), and Apple's MPS on arm64 macOS. ``auto``, ``cpu`` and ``cuda`` are always
offered, so scripts written on another machine keep working; the engine says clearly when
a device is not there.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys

__all__ = ["DEVICE_HELP", "device_options"]

DEVICE_HELP = (
    "Where the network runs: auto (a GPU when the engine finds one, else the CPU), cpu, "
    "cuda (the first NVIDIA GPU), cuda:N (GPU number N) or mps (Apple GPU). The list shows "
    "the GPUs found on this computer. From scripts and qgis_process give the name, e.g. "
    "DEVICE=cpu."
)


@functools.lru_cache(maxsize=1)
def _nvidia_gpus() -> int:
    folder = "/proc/driver/nvidia/gpus"
    if os.path.isdir(folder):
        return len(os.listdir(folder))
    if sys.platform.startswith("linux"):
        return 0
    tool = shutil.which("nvidia-smi")
    if not tool:
        return 0
    try:
        listing = subprocess.run(
            [tool, "-L"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def device_options() -> list[str]:
    """Return the device names offered: auto, cpu, cuda, then each GPU found."""
    options = ["auto", "cpu", "cuda"]
    options += [f"cuda:{index}" for index in range(_nvidia_gpus())]
    if sys.platform == "darwin" and platform.machine() == "arm64":
        options.append("mps")
    return options
