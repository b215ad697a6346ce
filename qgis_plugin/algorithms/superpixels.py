"""Processing algorithms ``landseg:slic``, ``landseg:quickshift`` and ``landseg:felzenszwalb``."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterRasterDestination,
    QgsProcessingUtils,
)

from ...core.params import (
    SEED,
    SUPERPIXELS,
)
from ..checks import extension_error
from ..engine import run_engine
from ..sources import absolute, clip_to_extent, copy_polygons, raster_source
from ..styling import LayerStyler, attach_styler
from .base import POLYGONS, LandSegAlgorithm

_NAMES = {"slic": "SLIC", "quickshift": "QuickShift", "felzenszwalb": "Felzenszwalb"}
SUPERPIXEL_TAGS = (
    "segmentation",
    "superpixels",
    "OBIA",
    "GEOBIA",
    "object-based",
    "objects",
    "image segmentation",
    "raster",
)


class SuperpixelAlgorithm(LandSegAlgorithm):
    """Segment a raster into superpixels with one engine command."""

    group_id = "superpixels"
    method = ""

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        """Declare the parameters: input, bands, extent, method parameters, stretch, outputs."""
        self.add_input_and_bands()
        self.add_extent()
        for param in SUPERPIXELS[self.method]:
            self.add_spec(param)
        self.add_stretch()
        self.add_percentiles()
        self.add_spec(SEED)
        self.add_dask_scheduler()
        # Optional (a temporary file when left out), so a model that shows it as an
        # output does not make qgis_process ask for it.
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "OUTPUT", self.tr("Segments"), optional=True, createByDefault=True
            )
        )
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

    def check(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str | None]:
        """Bands of the input, GeoTIFF outputs, no output twice."""
        return [
            *super().check(parameters, context),
            self.bands_error(parameters, context),
            *(
                extension_error(key, parameters.get(key), ("tif", "tiff"))
                for key in ("OUTPUT", "OUTPUT_MEAN")
            ),
        ]

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        """Run the engine command and load the styled outputs."""
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        source = raster_source(layer, "INPUT")
        source = clip_to_extent(self, parameters, layer, source, context, feedback)
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
        name = _NAMES[self.method]
        attach_styler(context, output, LayerStyler(f"{name} segments", n_segments=n_segments))
        outputs: dict[str, Any] = {"OUTPUT": output, "N_SEGMENTS": n_segments}
        if mean:
            attach_styler(context, mean, LayerStyler(f"{name} segment means"))
            outputs["OUTPUT_MEAN"] = mean
        if polygons_tmp:
            sink_id = copy_polygons(
                self,
                f"{polygons_tmp}|layername=segments",
                parameters,
                "OUTPUT_POLYGONS",
                context,
                feedback,
            )
            attach_styler(context, sink_id, LayerStyler(f"{name} segment polygons", outlines=True))
            outputs["OUTPUT_POLYGONS"] = sink_id
        return outputs


class SlicAlgorithm(SuperpixelAlgorithm):
    """SLIC superpixels (``landseg:slic``)."""

    algorithm_id = "slic"
    display_name = "SLIC superpixels"
    method = "slic"
    short_description = "Superpixels by local k-means on band values and position."
    keywords = (*SUPERPIXEL_TAGS, "SLIC", "k-means", "clustering")


class QuickshiftAlgorithm(SuperpixelAlgorithm):
    """QuickShift superpixels (``landseg:quickshift``)."""

    algorithm_id = "quickshift"
    display_name = "QuickShift superpixels"
    method = "quickshift"
    short_description = "Superpixels by mode seeking (kernel density) on band values."
    keywords = (*SUPERPIXEL_TAGS, "QuickShift", "mean shift", "mode seeking", "clustering")


class FelzenszwalbAlgorithm(SuperpixelAlgorithm):
    """Felzenszwalb graph-based segmentation (``landseg:felzenszwalb``)."""

    algorithm_id = "felzenszwalb"
    display_name = "Felzenszwalb segmentation"
    method = "felzenszwalb"
    short_description = "Segments by graph-based region merging (Felzenszwalb-Huttenlocher)."
    keywords = (*SUPERPIXEL_TAGS, "Felzenszwalb", "graph-based", "region merging")
