"""LandSeg engine: raster segmentation without QGIS.

The engine runs in its own Python environment, as a subprocess of QGIS or from the
command line (``python -m core --help``). Nothing in this package imports QGIS or Qt.
Heavy dependencies (torch, numba kernels) are imported lazily by the modules that need
them, so ``import core`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
