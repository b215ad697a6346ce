"""Processing algorithm ``landseg:vectorize``: classified or segment raster to polygons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsProcessingUtils,
    QgsVectorLayer,
)

from ..checks import bands_error
from ..engine import run_engine
from ..sources import absolute, clip_to_extent, raster_source
from ..styling import LayerStyler, attach_styler, style_outlines, style_polygon_classes
from .base import DOUBLE, POLYGONS, LandSegAlgorithm

CONNECTIVITY = (4, 8)
SIZE_UNITS = ("pixels", "map units²")


class PolygonStyler(LayerStyler):
    """Name the polygons and style them by class, or as outlines for segments."""

    def postProcessLayer(
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        """Apply the categorized or outline style to the loaded layer."""
        layer.setName(self.name)
        if isinstance(layer, QgsVectorLayer):
            style_vector(layer, self.classes)


def style_vector(layer: QgsVectorLayer, classes: Sequence[Mapping[str, Any]]) -> None:
    """Categorize by ``value`` with the class colours, or draw outlines (segments)."""
    if not style_polygon_classes(layer, classes):
        style_outlines(layer)


def write_vector_style(path: str, classes: Sequence[Mapping[str, Any]]) -> str | None:
    """Write ``<file>.qml`` beside the polygons, so the style returns when they are opened."""
    layer = QgsVectorLayer(path, "polygons", "ogr")
    if not layer.isValid():
        return None
    style_vector(layer, classes)
    qml = str(Path(path).with_suffix(".qml"))
    layer.saveNamedStyle(qml)
    return qml


class VectorizeAlgorithm(LandSegAlgorithm):
    """One polygon per connected region, with value, class name, pixels and area."""

    algorithm_id = "vectorize"
    display_name = "Vectorize classes or segments"
    group_id = "postprocessing"
    short_description = "Polygons of connected regions, with class, pixels and area; sieve."
    keywords = (
        "vectorize",
        "polygonize",
        "raster to vector",
        "polygons",
        "sieve",
        "simplify",
        "OBIA",
        "object-based",
        "segments",
        "classification",
    )

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        """Declare raster, band, connectivity, sieve, simplification and the output file."""
        self.addParameter(
            QgsProcessingParameterRasterLayer("INPUT", self.tr("Classified or segment raster"))
        )
        self.addParameter(
            QgsProcessingParameterBand(
                "BAND",
                self.tr("Band"),
                defaultValue=1,
                parentLayerParameterName="INPUT",
                optional=True,  # 3.22 rejects a missing band despite the default
            )
        )
        self.add_extent(
            "Vectorize only this region (any CRS), snapped outwards to whole pixels. "
            "Empty: the whole raster."
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "CONNECTIVITY",
                self.tr("Pixel connectivity"),
                options=[
                    self.tr("4 (edges)"),
                    self.tr("8 (edges and corners)"),
                ],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "MIN_SIZE",
                self.tr("Sieve: minimum region size"),
                type=DOUBLE,
                defaultValue=0,
                minValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "MIN_SIZE_UNIT",
                self.tr("Sieve size unit"),
                options=[self.tr("pixels"), self.tr("map units² (area)")],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "SIMPLIFY",
                self.tr("Simplify tolerance (map units)"),
                type=DOUBLE,
                defaultValue=0,
                minValue=0,
            )
        )
        # Optional (a temporary file when left out), so a model that shows it as an
        # output does not make qgis_process ask for it.
        output = QgsProcessingParameterVectorDestination(
            "OUTPUT", self.tr("Polygons"), type=POLYGONS, optional=True, createByDefault=True
        )
        self.addParameter(output)
        # The engine writes files: no memory or database output (after addParameter, which
        # copies the provider's setting).
        output.setSupportsNonFileBasedOutput(False)
        for key, text in (
            ("CONNECTIVITY", "4: regions join through pixel edges; 8: also through corners."),
            (
                "MIN_SIZE",
                "Regions smaller than this are merged into their largest neighbour "
                "first (0: keep all).",
            ),
            ("SIMPLIFY", "Douglas-Peucker tolerance in map units (0: exact pixel edges)."),
        ):
            self.parameterDefinition(key).setHelp(self.tr(text))
        self.addOutput(QgsProcessingOutputNumber("N_POLYGONS", self.tr("Number of polygons")))

    def check(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str | None]:
        """Check the band, that the output is a file, and that no output replaces the input."""
        errors = [*super().check(parameters, context)]
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        if layer is not None and parameters.get("BAND") not in (None, ""):
            band = self.parameterAsInt(parameters, "BAND", context)
            errors.append(bands_error("BAND", [band], layer.bandCount(), layer.name()))
        output = parameters.get("OUTPUT")
        if isinstance(output, QgsProcessingOutputLayerDefinition):
            output = output.sink.staticValue()
        text = str(output or "")
        if text.startswith(("memory:", "postgres:", "postgis:", "ogr:", "spatialite:")):
            errors.append(
                f"OUTPUT {text}: LandSeg's engine writes vector files. Save to a file "
                "(GeoPackage .gpkg, Shapefile .shp, GeoJSON, FlatGeobuf…)."
            )
        return errors

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        """Run ``python -m core vectorize`` and load the styled polygons."""
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        source = raster_source(layer, "INPUT")
        original = source
        source = clip_to_extent(self, parameters, layer, source, context, feedback)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if not output:  # left out (an optional model output): a temporary file
            output = QgsProcessingUtils.generateTempFilename("polygons.gpkg")
        if "|" in output or "://" in output or output.split(":", 1)[0] in ("postgres", "memory"):
            raise QgsProcessingException(
                f"{output} is not a file: LandSeg's engine writes vector files. Save to a file "
                "(GeoPackage .gpkg, Shapefile .shp, GeoJSON, FlatGeobuf…)."
            )
        output = absolute(output)
        size = self.parameterAsDouble(parameters, "MIN_SIZE", context)
        unit = self.parameterAsEnum(parameters, "MIN_SIZE_UNIT", context)
        args = [
            "vectorize",
            source,
            output,
            "--overwrite",
            "--band",
            str(self.parameterAsInt(parameters, "BAND", context) or 1),
            "--connectivity",
            str(CONNECTIVITY[self.parameterAsEnum(parameters, "CONNECTIVITY", context)]),
            "--simplify",
            repr(self.parameterAsDouble(parameters, "SIMPLIFY", context)),
        ]
        if size > 0:
            if unit == 0:
                args += ["--min-pixels", str(round(size))]
            else:
                args += ["--min-area", repr(size)]
        result = run_engine(args, feedback, outputs=[output])
        classes = result.get("CLASSES") or []
        n_polygons = int(result.get("N_POLYGONS", 0))
        feedback.pushInfo(self.tr(f"{n_polygons} polygons ({result.get('KIND', 'classes')})."))
        if Path(output).with_suffix(".qml") == Path(original.split("|")[0]).with_suffix(".qml"):
            feedback.pushWarning(
                self.tr(
                    "The polygons have the raster's base name, so no .qml style is written "
                    "beside them (it would replace the raster's style)."
                )
            )
        else:
            write_vector_style(output, classes)
        name = f"{layer.name()} polygons" if layer is not None else "Polygons"
        attach_styler(context, output, PolygonStyler(name, classes=classes))
        return {"OUTPUT": output, "N_POLYGONS": n_polygons}
