"""LandSeg QGIS plugin: raster segmentation into land-cover maps (Processing provider).

QGIS imports this package and calls :func:`classFactory`. Nothing heavy is imported here:
the engine (``core``) runs in its own Python environment as a subprocess.
"""


def classFactory(iface):  # noqa: ANN001, ANN201 - QGIS plugin entry point
    """Create the plugin instance QGIS asks for."""
    from .qgis_plugin.plugin import LandSegPlugin

    return LandSegPlugin(iface)
