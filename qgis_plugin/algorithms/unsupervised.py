"""Processing algorithms ``landseg:isb``, ``landseg:dfc`` and ``landseg:wnet``.

Unsupervised deep segmentation: a network trained on the raster itself, without labels
(``core/unsupervised.py``). Each algorithm reads its parameters, runs one engine command
and loads the styled outputs.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

from ...core.params import (
    SEED,
    UNSUPERVISED,
    UNSUPERVISED_COMMON,
)
from ..engine import run_engine
from ..styling import LayerStyler, attach_styler, write_class_style
from .base import INTEGER, RASTERS, LandSegAlgorithm, absolute, raster_source

try:
    from qgis.core import Qgis

    LINES = Qgis.ProcessingSourceType.VectorLine
    POLYGONS = Qgis.ProcessingSourceType.VectorPolygon
except AttributeError:
    from qgis.core import QgsProcessing

    LINES = QgsProcessing.TypeVectorLine
    POLYGONS = QgsProcessing.TypeVectorPolygon

_NAMES = {"isb": "ISB", "dfc": "DFC", "wnet": "W-Net"}
MODES = ("auto", "image", "dataset")
_MODE_LABELS = (
    "Auto (whole image up to 512 x 512 pixels, else sampled tiles)",
    "Whole image (as in the papers)",
    "Dataset: train on sampled tiles, label every tile with the same network",
)
ASSIGNMENTS = ("hungarian", "majority")
_ASSIGNMENT_LABELS = ("One-to-one (Hungarian)", "Many-to-one (majority)")


class UnsupervisedAlgorithm(LandSegAlgorithm):
    """Train a network on the raster itself and write its clusters."""

    group_id = "unsuperviseddeep"
    method = ""

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        """Declare input, method settings, optional scribbles and reference, outputs."""
        self.add_input_and_bands()
        for param in UNSUPERVISED[self.method]:
            self.add_spec(param)
        self.add_stretch()
        if self.method == "dfc":
            self.addParameter(
                QgsProcessingParameterMapLayer(
                    "SCRIBBLES",
                    self.tr("Scribbles: lines or polygons with a class field, or a raster"),
                    optional=True,
                    types=[LINES, POLYGONS, RASTERS],
                )
            )
            self.addParameter(
                QgsProcessingParameterField(
                    "SCRIBBLE_FIELD",
                    self.tr("Class field of the scribbles"),
                    parentLayerParameterName="SCRIBBLES",
                    optional=True,
                )
            )
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                "REFERENCE",
                self.tr("Reference classes (map clusters to them)"),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "ASSIGNMENT",
                self.tr("Cluster to class mapping"),
                options=[self.tr(label) for label in _ASSIGNMENT_LABELS],
                defaultValue=0,
            )
        )
        self.add_advanced(
            QgsProcessingParameterString(
                "REFERENCE_CLASSES",
                self.tr("Reference class names and colours (1:forest:#1b7837,2:water:#2166ac)"),
                optional=True,
            )
        )
        self.add_advanced(
            QgsProcessingParameterString(
                "REFERENCE_IGNORE",
                self.tr("Reference values to leave out, comma-separated (e.g. 0)"),
                optional=True,
            )
        )
        self.add_advanced(
            QgsProcessingParameterEnum(
                "MODE",
                self.tr("Training mode"),
                options=[self.tr(label) for label in _MODE_LABELS],
                defaultValue=0,
            )
        )
        for param in UNSUPERVISED_COMMON:
            self.add_spec(param)
        self.add_percentiles()
        self.add_spec(SEED)
        self.add_advanced(
            QgsProcessingParameterString(
                "DEVICE", self.tr("Device (auto, cpu, cuda, cuda:1)"), defaultValue="auto"
            )
        )
        self.add_advanced(
            QgsProcessingParameterNumber(
                "THREADS",
                self.tr("CPU threads (0: all)"),
                type=INTEGER,
                defaultValue=0,
                minValue=0,
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Clusters")))
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "OUTPUT_MAPPED",
                self.tr("Clusters as reference classes"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_MAPPING",
                self.tr("Cluster to class table"),
                self.tr("CSV files (*.csv)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_MODEL",
                self.tr("Model file (apply it with Classify with U-Net model)"),
                self.tr("LandSeg model (*.safetensors)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputNumber("N_CLUSTERS", self.tr("Number of clusters")))
        self.addOutput(QgsProcessingOutputNumber("ITERATIONS", self.tr("Training iterations")))
        self.addOutput(QgsProcessingOutputNumber("ARI", self.tr("Adjusted Rand index")))
        self.addOutput(
            QgsProcessingOutputNumber("OVERALL_ACCURACY", self.tr("Overall accuracy after mapping"))
        )

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        """Run ``python -m core <method>`` and load the styled clusters."""
        source = raster_source(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        output = self.output_path(parameters, "OUTPUT", context, "clusters.tif")
        args = [
            self.method,
            source,
            output,
            "--overwrite",
            *self.stretch_args(parameters, context),
            "--mode",
            MODES[self.parameterAsEnum(parameters, "MODE", context)],
            "--device",
            self.parameterAsString(parameters, "DEVICE", context).strip() or "auto",
            SEED.option,
            str(self.parameterAsInt(parameters, "SEED", context)),
        ]
        threads = self.parameterAsInt(parameters, "THREADS", context)
        if threads > 0:
            args += ["--threads", str(threads)]
        args += self.spec_args(
            (*UNSUPERVISED[self.method], *UNSUPERVISED_COMMON), parameters, context
        )
        if self.method == "dfc":
            args += self._scribble_args(parameters, context)
        files = [output]
        outputs: dict[str, Any] = {"OUTPUT": output}
        reference = self.parameterAsRasterLayer(parameters, "REFERENCE", context)
        mapped = mapping = None
        if reference is not None:
            args += [
                "--reference",
                raster_source(reference, "REFERENCE"),
                "--assignment",
                ASSIGNMENTS[self.parameterAsEnum(parameters, "ASSIGNMENT", context)],
            ]
            names = self.parameterAsString(parameters, "REFERENCE_CLASSES", context).strip()
            if names:
                args += ["--reference-classes", names]
            for value in self._ignore_values(parameters, context):
                args += ["--reference-ignore", value]
            if parameters.get("OUTPUT_MAPPED") is not None:
                mapped = absolute(self.parameterAsOutputLayer(parameters, "OUTPUT_MAPPED", context))
            if parameters.get("OUTPUT_MAPPING") is not None:
                mapping = absolute(
                    self.parameterAsFileOutput(parameters, "OUTPUT_MAPPING", context)
                )
            if mapped:
                args += ["--mapped", mapped]
                files.append(mapped)
            if mapping:
                args += ["--mapping-csv", mapping]
                files.append(mapping)
        elif parameters.get("OUTPUT_MAPPED") is not None or parameters.get("OUTPUT_MAPPING"):
            feedback.reportError(
                self.tr("OUTPUT_MAPPED and OUTPUT_MAPPING need a REFERENCE raster; skipped.")
            )
        if parameters.get("OUTPUT_MODEL") is not None:
            model = self.parameterAsFileOutput(parameters, "OUTPUT_MODEL", context)
            if model:
                model = absolute(model)
                args += ["--model", model]
                files.append(model)
                outputs["OUTPUT_MODEL"] = model

        result = run_engine(args, feedback, outputs=files)
        name = _NAMES[self.method]
        classes = result.get("CLASSES") or []
        n_clusters = int(result.get("N_CLUSTERS", 0))
        feedback.pushInfo(self.tr(f"{n_clusters} clusters."))
        write_class_style(output, classes)
        attach_styler(context, output, LayerStyler(f"{name} clusters", classes=classes))
        outputs.update(
            N_CLUSTERS=n_clusters,
            ITERATIONS=int(result.get("ITERATIONS", 0)),
            ARI=float(result["ARI"]) if result.get("ARI") is not None else float("nan"),
            OVERALL_ACCURACY=(
                float(result["OVERALL_ACCURACY"])
                if result.get("OVERALL_ACCURACY") is not None
                else float("nan")
            ),
        )
        if mapped:
            mapped_classes = result.get("MAPPED_CLASSES") or []
            write_class_style(mapped, mapped_classes)
            attach_styler(
                context, mapped, LayerStyler(f"{name} clusters as classes", classes=mapped_classes)
            )
            outputs["OUTPUT_MAPPED"] = mapped
        if mapping:
            outputs["OUTPUT_MAPPING"] = mapping
        return outputs

    def _ignore_values(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> list[str]:
        text = self.parameterAsString(parameters, "REFERENCE_IGNORE", context)
        values = [part.strip() for part in text.split(",") if part.strip()]
        for value in values:
            try:
                float(value)
            except ValueError:
                raise QgsProcessingException(
                    f"REFERENCE_IGNORE {value!r} is not a number; give values such as 0,255."
                ) from None
        return values

    def _scribble_args(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> list[str]:
        """Scribble options: a raster file, or a vector file (memory layers are saved)."""
        layer = self.parameterAsLayer(parameters, "SCRIBBLES", context)
        if layer is None:
            return []
        if isinstance(layer, QgsRasterLayer):
            return ["--scribbles", raster_source(layer, "SCRIBBLES")]
        if not isinstance(layer, QgsVectorLayer):
            raise QgsProcessingException("SCRIBBLES must be a vector or a raster layer.")
        field = self.parameterAsString(parameters, "SCRIBBLE_FIELD", context)
        if not field:
            raise QgsProcessingException(
                "Vector scribbles need SCRIBBLE_FIELD, the field holding each stroke's class."
            )
        if layer.fields().indexOf(field) < 0:
            raise QgsProcessingException(f"SCRIBBLES has no field {field!r}.")
        if layer.providerType() == "ogr":
            path = absolute(layer.source())
        else:  # a scratch layer drawn in QGIS: save it for the engine
            path = QgsProcessingUtils.generateTempFilename("scribbles.gpkg")
            options = QgsVectorFileWriter.SaveVectorOptions()
            options.driverName = "GPKG"
            write = getattr(QgsVectorFileWriter, "writeAsVectorFormatV3", None) or (
                QgsVectorFileWriter.writeAsVectorFormatV2
            )
            error = write(layer, path, context.transformContext(), options)
            if error[0] != QgsVectorFileWriter.WriterError.NoError:
                raise QgsProcessingException(f"Cannot save the scribbles: {error[1]}")
        return ["--scribbles", path, "--scribble-field", field]


class IsbAlgorithm(UnsupervisedAlgorithm):
    """Kanezaki's unsupervised segmentation by backpropagation (``landseg:isb``)."""

    algorithm_id = "isb"
    display_name = "ISB: segmentation by backpropagation"
    method = "isb"


class DfcAlgorithm(UnsupervisedAlgorithm):
    """Differentiable feature clustering (``landseg:dfc``)."""

    algorithm_id = "dfc"
    display_name = "DFC: differentiable feature clustering"
    method = "dfc"


class WnetAlgorithm(UnsupervisedAlgorithm):
    """W-Net (``landseg:wnet``)."""

    algorithm_id = "wnet"
    display_name = "W-Net: unsupervised segmentation"
    method = "wnet"
