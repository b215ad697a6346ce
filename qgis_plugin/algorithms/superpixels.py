"""Processing algorithms ``landseg:slic``, ``landseg:quickshift`` and ``landseg:felzenszwalb``."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsFeatureSink,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterRasterDestination,
    QgsProcessingUtils,
    QgsVectorLayer,
)

from ...core.params import (
    SEED,
    SUPERPIXELS,
)
from ..engine import run_engine
from ..styling import LayerStyler, attach_styler, write_segment_style
from .base import POLYGONS, LandSegAlgorithm, absolute, raster_source

_NAMES = {"slic": "SLIC", "quickshift": "QuickShift", "felzenszwalb": "Felzenszwalb"}


class SuperpixelAlgorithm(LandSegAlgorithm):
    """Segment a raster into superpixels with one engine command."""

    group_id = "superpixels"
    method = ""

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        """Declare the parameters: input, bands, method parameters, stretch, outputs."""
        self.add_input_and_bands()
        for param in SUPERPIXELS[self.method]:
            self.add_spec(param)
        self.add_stretch()
        self.add_percentiles()
        self.add_spec(SEED)
        self.add_dask_scheduler()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Segments")))
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "OUTPUT_POLYGONS",
                self.tr("Segment polygons"),
                type=POLYGONS,
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "OUTPUT_MEAN",
                self.tr("Segment mean values"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputNumber("N_SEGMENTS", self.tr("Number of segments")))

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        """Run the engine command and load the styled outputs."""
        source = raster_source(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        output = self.output_path(parameters, "OUTPUT", context, "segments.tif")
        mean = (
            absolute(self.parameterAsOutputLayer(parameters, "OUTPUT_MEAN", context))
            if parameters.get("OUTPUT_MEAN") is not None
            else None
        )
        polygons_tmp = None
        if parameters.get("OUTPUT_POLYGONS") is not None:
            polygons_tmp = QgsProcessingUtils.generateTempFilename("segments.gpkg")

        args = [
            self.method,
            source,
            output,
            "--overwrite",
            *self.stretch_args(parameters, context),
            SEED.option,
            str(self.parameterAsInt(parameters, "SEED", context)),
            *self.spec_args(SUPERPIXELS[self.method], parameters, context),
        ]
        if mean:
            args += ["--mean", mean]
        if polygons_tmp:
            args += ["--polygons", polygons_tmp]
        args += self.dask_args(parameters, context)

        result = run_engine(args, feedback, outputs=[p for p in (output, mean) if p])
        n_segments = int(result.get("N_SEGMENTS", 0))
        feedback.pushInfo(self.tr(f"{n_segments} segments."))
        write_segment_style(output, n_segments)
        name = _NAMES[self.method]
        attach_styler(context, output, LayerStyler(f"{name} segments", n_segments=n_segments))
        outputs: dict[str, Any] = {"OUTPUT": output, "N_SEGMENTS": n_segments}
        if mean:
            attach_styler(context, mean, LayerStyler(f"{name} segment means"))
            outputs["OUTPUT_MEAN"] = mean
        if polygons_tmp:
            sink_id = self._copy_polygons(polygons_tmp, parameters, context, feedback)
            attach_styler(context, sink_id, LayerStyler(f"{name} segment polygons", outlines=True))
            outputs["OUTPUT_POLYGONS"] = sink_id
        return outputs

    def _copy_polygons(
        self,
        path: str,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> str:
        """Copy the engine's polygons into the user's sink (any format, or memory)."""
        layer = QgsVectorLayer(f"{path}|layername=segments", "segments", "ogr")
        if not layer.isValid():
            raise QgsProcessingException(f"Cannot read the polygons the engine wrote: {path}")
        sink, sink_id = self.parameterAsSink(
            parameters, "OUTPUT_POLYGONS", context, layer.fields(), layer.wkbType(), layer.crs()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT_POLYGONS"))
        total = max(layer.featureCount(), 1)
        for index, feature in enumerate(layer.getFeatures()):
            if feedback.isCanceled():
                break
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
            if index % 1000 == 0:
                feedback.setProgress(100.0 * index / total)
        del layer
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        return sink_id


class SlicAlgorithm(SuperpixelAlgorithm):
    """SLIC superpixels (``landseg:slic``)."""

    algorithm_id = "slic"
    display_name = "SLIC superpixels"
    method = "slic"


class QuickshiftAlgorithm(SuperpixelAlgorithm):
    """QuickShift superpixels (``landseg:quickshift``)."""

    algorithm_id = "quickshift"
    display_name = "QuickShift superpixels"
    method = "quickshift"


class FelzenszwalbAlgorithm(SuperpixelAlgorithm):
    """Felzenszwalb graph-based segmentation (``landseg:felzenszwalb``)."""

    algorithm_id = "felzenszwalb"
    display_name = "Felzenszwalb segmentation"
    method = "felzenszwalb"
