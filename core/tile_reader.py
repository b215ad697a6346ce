"""Tiles of a raster read ahead of the network, in a background thread.

:class:`TileReader` opens its own handle on the raster, reads the windows in order,
normalises each tile (``(x - offset) / scale``, 0 on nodata), pads it to the tile size
and hands batches of tiles to the caller through a bounded queue, so that reading
overlaps the network's compute. Windows with no valid pixel give no tile. Errors in the
thread are raised again in the caller's. :func:`core.inference.predict_raster` uses it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from . import io
from .protocol import EngineError
from .tiling import pad_tile

__all__ = ["PREFETCH_BATCHES", "TileBatch", "TileReader"]

#: Batches the reader thread may prepare ahead of the network.
PREFETCH_BATCHES = 2


@dataclass
class TileBatch:
    """Windows in raster order; ``index[k]`` is the tile of window ``k``, -1 when empty."""

    windows: list[Window] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    tiles: list[np.ndarray] = field(default_factory=list)  # (C, T, T) float32, normalised
    valid: list[np.ndarray] = field(default_factory=list)  # (h, w) bool per tile


class TileReader(threading.Thread):
    """Read, normalise and batch tiles ahead of the network (its own dataset handle)."""

    def __init__(
        self,
        src: str,
        windows: Sequence[Window],
        *,
        bands: Sequence[int],
        offsets: np.ndarray,
        scales: np.ndarray,
        tile_size: int,
        batch_size: int,
        nodata_zero: bool,
    ) -> None:
        super().__init__(name="landseg-reader", daemon=True)
        self.src = src
        self.windows = list(windows)
        self.bands = list(bands)
        self.offsets = offsets[:, None, None]
        self.scales = scales[:, None, None]
        self.tile_size = tile_size
        self.batch_size = batch_size
        self.nodata_zero = nodata_zero
        self.out: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH_BATCHES)
        self.stop = threading.Event()
        self.skipped = 0

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        """Read every window (the thread's body); an error goes to :meth:`items`."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(self.src) as raster:
                    self._read_all(raster)
        except BaseException as err:  # forwarded to the main thread
            self._put(("error", err))

    def _read_all(self, raster: Any) -> None:
        batch = TileBatch()
        for win in self.windows:
            if self.stop.is_set():
                return
            image, valid = io.read_bands(
                raster, self.bands, window=win, nodata_zero=self.nodata_zero
            )
            batch.windows.append(win)
            if not valid.any():
                self.skipped += 1
                batch.index.append(-1)
            else:
                image = (image - self.offsets) / self.scales
                image[:, ~valid] = 0.0
                batch.index.append(len(batch.tiles))
                batch.tiles.append(pad_tile(image, self.tile_size))
                batch.valid.append(valid)
            if len(batch.tiles) == self.batch_size or len(batch.windows) >= 8 * self.batch_size:
                if not self._put(("batch", batch)):
                    return
                batch = TileBatch()
        if batch.windows and not self._put(("batch", batch)):
            return
        self._put(("done", None))

    def items(self) -> Iterator[tuple[str, Any]]:
        """Yield reader items; re-raise a reader error in the caller's thread."""
        while True:
            try:
                kind, item = self.out.get(timeout=0.2)
            except queue.Empty:
                if not self.is_alive() and self.out.empty():
                    raise EngineError("The tile reader stopped unexpectedly.") from None
                continue
            if kind == "error":
                raise item
            if kind == "done":
                return
            yield kind, item

    def close(self) -> None:
        """Stop reading and wait briefly for the thread."""
        self.stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self.out.get_nowait()
        self.join(timeout=5)
