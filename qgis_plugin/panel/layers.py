"""The layers the panel draws into: training polygons and scribbles in a GeoPackage.

The GeoPackage sits beside the project file (``<project>_landseg.gpkg``; in QGIS's
temporary folder while the project is unsaved). Each layer is created on first use in the
raster's CRS (none for images in pixel coordinates), with an integer ``class`` field, and
styled by the class table. Edits go through the layer's edit buffer, so QGIS's undo and
redo work as for any edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsProcessingUtils,
    QgsProject,
    QgsRendererCategory,
    QgsSymbol,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from .classes import ClassInfo

#: Class field of both layers.
CLASS_FIELD = "class"
#: Layer kinds: (GeoPackage layer name, OGR geometry name, layer title).
KINDS = {
    "polygons": ("training_polygons", "Polygon", "LandSeg training polygons"),
    "scribbles": ("scribbles", "LineString", "LandSeg scribbles"),
}
_PROPERTY = "landseg/kind"


def training_geopackage(project: QgsProject | None = None) -> Path:
    """Return the GeoPackage of the project's drawings (created on first use)."""
    project = project or QgsProject.instance()
    name = project.fileName()
    if name:
        path = Path(name)
        return path.with_name(f"{path.stem}_landseg.gpkg")
    return Path(QgsProcessingUtils.tempFolder()) / "landseg_drawings.gpkg"


def find_layer(kind: str, project: QgsProject | None = None) -> QgsVectorLayer | None:
    """Return the project's drawing layer of ``kind`` ("polygons" or "scribbles")."""
    project = project or QgsProject.instance()
    for layer in project.mapLayers().values():
        if isinstance(layer, QgsVectorLayer) and layer.customProperty(_PROPERTY) == kind:
            return layer
    return None


def drawing_layer(
    kind: str,
    crs: QgsCoordinateReferenceSystem,
    classes: Sequence[ClassInfo],
    project: QgsProject | None = None,
) -> QgsVectorLayer:
    """Return the drawing layer of ``kind``, creating, styling and adding it if needed.

    Raises
    ------
    RuntimeError
        When the GeoPackage cannot be written.
    """
    project = project or QgsProject.instance()
    layer = find_layer(kind, project)
    if layer is not None:
        return layer
    table, geometry, title = KINDS[kind]
    path = training_geopackage(project)
    _create_table(path, table, geometry, crs)
    layer = QgsVectorLayer(f"{path}|layername={table}", title, "ogr")
    if not layer.isValid():
        raise RuntimeError(f"Cannot open the drawing layer {table} in {path}.")
    layer.setCustomProperty(_PROPERTY, kind)
    style_drawing_layer(layer, classes)
    project.addMapLayer(layer)
    return layer


def _create_table(path: Path, table: str, geometry: str, crs: QgsCoordinateReferenceSystem) -> None:
    from osgeo import ogr, osr

    ogr.UseExceptions()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        dataset = ogr.Open(str(path), 1)
    else:
        dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    if dataset is None:
        raise RuntimeError(f"Cannot write the GeoPackage {path}.")
    try:
        if dataset.GetLayerByName(table) is not None:
            return
        srs = None
        if crs.isValid():
            srs = osr.SpatialReference()
            srs.ImportFromWkt(crs.toWkt())
        kind = ogr.wkbPolygon if geometry == "Polygon" else ogr.wkbLineString
        layer = dataset.CreateLayer(table, srs, kind)
        layer.CreateField(ogr.FieldDefn(CLASS_FIELD, ogr.OFTInteger))
    finally:
        dataset = None


def style_drawing_layer(layer: QgsVectorLayer, classes: Sequence[ClassInfo]) -> None:
    """Categorize a drawing layer by ``class`` with the table's names and colours.

    Polygons are drawn half transparent with a solid outline, scribbles as thick lines.
    """
    categories = []
    for info in classes:
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        color = QColor(info.color)
        if layer.customProperty(_PROPERTY) == "polygons":
            fill = QColor(color)
            fill.setAlpha(110)
            symbol.setColor(fill)
            symbol.symbolLayer(0).setStrokeColor(color)
            symbol.symbolLayer(0).setStrokeWidth(0.6)
        else:
            symbol.setColor(color)
            symbol.setWidth(1.2)
        categories.append(QgsRendererCategory(info.value, symbol, f"{info.value} {info.name}"))
    layer.setRenderer(QgsCategorizedSymbolRenderer(CLASS_FIELD, categories))
    layer.triggerRepaint()


def save_edits(layer: QgsVectorLayer | None) -> None:
    """Write pending edits to the GeoPackage (the engine reads the file), keep editing."""
    if layer is None or not layer.isEditable() or not layer.isModified():
        return
    if not layer.commitChanges(False):
        raise RuntimeError(f"Cannot save {layer.name()}: {'; '.join(layer.commitErrors())}")


def count_features(layer: QgsVectorLayer | None) -> int:
    """Features of a drawing layer, pending edits included."""
    return 0 if layer is None else int(layer.featureCount())
