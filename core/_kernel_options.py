"""What the numba kernels behind :mod:`core.superpixels` share: their compile options.

Conventions (every kernel module): images are band-first ``(C, H, W)`` float32,
C-contiguous; ``mask`` is an ``(H, W)`` bool array, or a ``(1, 1)`` placeholder when
``has_mask`` is False; working labels are int32 with ``-1`` for masked-out pixels. Kernels
compile on first call and are cached on disk (``cache=True``).
"""

__all__ = ["FASTMATH", "JIT"]

#: Fast-math without 'nnan'/'ninf': NaN and inf checks stay meaningful.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
#: Options of every kernel: compiled once and cached on disk, GIL released.
JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
