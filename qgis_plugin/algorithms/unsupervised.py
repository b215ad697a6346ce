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
    QgsRasterLayer,
    QgsVectorLayer,
)

from ...core.params import (
    SEED,
    UNSUPERVISED,
    UNSUPERVISED_COMMON,
)
from ..checks import class_table_error, extension_error, numbers_error
from ..engine import run_engine
from ..sources import absolute, clip_to_extent, raster_source, vector_layer_path
from ..styling import LayerStyler, attach_styler
from .base import INTEGER, RASTERS, LandSegAlgorithm

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
    "Auto (whole image up to 512 x 512, else tiles)",
    "Whole image",
    "Dataset of sampled tiles",
)
ASSIGNMENTS = ("hungarian", "majority")
#: Methods that take scribbles (they guide the training and name the clusters).
SCRIBBLE_METHODS = ("dfc", "isb")
UNSCRIBBLED = ("extra", "merge")
_UNSCRIBBLED_LABELS = ("Extra unnamed classes", "Merged into the most similar named class")
UNSUPERVISED_TAGS = (
    "unsupervised",
    "clustering",
    "classification",
    "unsupervised classification",
    "deep learning",
    "neural network",
    "CNN",
    "segmentation",
    "land cover",
    "PyTorch",
)
_ASSIGNMENT_LABELS = ("One-to-one (Hungarian)", "Many-to-one (majority)")


class UnsupervisedAlgorithm(LandSegAlgorithm):
    """Train a network on the raster itself and write its clusters."""

    group_id = "unsuperviseddeep"
    method = ""

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        """Declare input, method settings, optional scribbles and reference, outputs."""
        self.add_input_and_bands()
        self.add_extent()
        for param in UNSUPERVISED[self.method]:
            self.add_spec(param)
        self.add_stretch()
        if self.method in SCRIBBLE_METHODS:
            self.addParameter(
                QgsProcessingParameterMapLayer(
                    "SCRIBBLES",
                    self.tr("Scribbles"),
                    optional=True,
                    types=[LINES, POLYGONS, RASTERS],
                )
            )
            self.parameterDefinition("SCRIBBLES").setHelp(
                self.tr(
                    "A few strokes per class: lines or polygons with a class field (any "
                    "vector layer, a scratch layer too), or a raster of class values (0: no "
                    "scribble). They guide the clusters, and name them in Classes from the "
                    "scribbles."
                )
            )
            self.addParameter(
                QgsProcessingParameterField(
                    "SCRIBBLE_FIELD",
                    self.tr("Scribble class field"),
                    parentLayerParameterName="SCRIBBLES",
                    optional=True,
                )
            )
            self.add_class_table("SCRIBBLE_CLASSES", "Scribble class table")
            self.addParameter(
                QgsProcessingParameterEnum(
                    "UNSCRIBBLED",
                    self.tr("Clusters without scribbles"),
                    options=[self.tr(label) for label in _UNSCRIBBLED_LABELS],
                    defaultValue=0,
                )
            )
            self.parameterDefinition("UNSCRIBBLED").setHelp(
                self.tr(
                    "In Classes from the scribbles, clusters that no scribble touched become "
                    "extra classes named 'unnamed 1', 'unnamed 2'..., or merge into the named "
                    "class with the nearest mean band values."
                )
            )
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                "REFERENCE",
                self.tr("Reference classes"),
                optional=True,
            )
        )
        self.parameterDefinition("REFERENCE").setHelp(
            self.tr(
                "A raster of known classes: each cluster is mapped to a class, and the ARI "
                "and the accuracy after mapping are reported."
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
        self.add_class_table("REFERENCE_CLASSES", "Reference class table", advanced=True)
        self.add_numbers(
            "REFERENCE_IGNORE",
            "Reference values to ignore",
            "Reference values left out of the mapping and the scores (e.g. 0); "
            "scripts may give 0,255.",
            advanced=True,
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
        self.add_device()
        self.add_advanced(
            QgsProcessingParameterNumber(
                "THREADS",
                self.tr("CPU threads (0: all)"),
                type=INTEGER,
                defaultValue=0,
                minValue=0,
            )
        )
        # Optional (a temporary file when left out), so a model that shows it as an
        # output does not make qgis_process ask for it.
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "OUTPUT", self.tr("Clusters"), optional=True, createByDefault=True
            )
        )
        if self.method in SCRIBBLE_METHODS:
            self.addParameter(
                QgsProcessingParameterRasterDestination(
                    "OUTPUT_CLASSES",
                    self.tr("Classes from the scribbles"),
                    optional=True,
                    createByDefault=True,
                )
            )
            self.parameterDefinition("OUTPUT_CLASSES").setHelp(
                self.tr(
                    "With scribbles: the clusters as the scribbles' classes, in their values, "
                    "names and colours (each cluster takes the class of the scribbles it "
                    "holds). Without scribbles nothing is written."
                )
            )
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
                self.tr("Cluster to class table (CSV)"),
                self.tr("CSV files (*.csv)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_MODEL",
                self.tr("Model file"),
                self.tr("LandSeg model (*.safetensors)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.parameterDefinition("OUTPUT_MODEL").setHelp(
            self.tr(
                "The trained network; apply it to other rasters with Classify with U-Net model."
            )
        )
        self.addOutput(QgsProcessingOutputNumber("N_CLUSTERS", self.tr("Number of clusters")))
        self.addOutput(QgsProcessingOutputNumber("ITERATIONS", self.tr("Training iterations")))
        self.addOutput(QgsProcessingOutputNumber("ARI", self.tr("Adjusted Rand index")))
        self.addOutput(
            QgsProcessingOutputNumber("OVERALL_ACCURACY", self.tr("Overall accuracy after mapping"))
        )

    def check(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str | None]:
        """Bands, class table, ignored values, scribble field, output files."""
        errors = [
            *super().check(parameters, context),
            self.bands_error(parameters, context),
            class_table_error(
                "REFERENCE_CLASSES",
                self.classes_text(parameters, "REFERENCE_CLASSES", context),
                allow_zero=True,
            ),
            numbers_error(
                "REFERENCE_IGNORE", self.numbers(parameters, "REFERENCE_IGNORE", context)
            ),
            *(
                extension_error(key, parameters.get(key), ("tif", "tiff"))
                for key in ("OUTPUT", "OUTPUT_MAPPED", "OUTPUT_CLASSES")
            ),
            extension_error("OUTPUT_MAPPING", parameters.get("OUTPUT_MAPPING"), ("csv",)),
            extension_error("OUTPUT_MODEL", parameters.get("OUTPUT_MODEL"), ("safetensors",)),
        ]
        if self.method in SCRIBBLE_METHODS:
            errors.append(
                class_table_error(
                    "SCRIBBLE_CLASSES",
                    self.classes_text(parameters, "SCRIBBLE_CLASSES", context),
                )
            )
        if self.method in SCRIBBLE_METHODS and parameters.get("SCRIBBLES") not in (None, ""):
            layer = self.parameterAsLayer(parameters, "SCRIBBLES", context)
            field = self.parameterAsString(parameters, "SCRIBBLE_FIELD", context)
            if isinstance(layer, QgsVectorLayer):
                if not field:
                    errors.append(
                        "Vector scribbles need SCRIBBLE_FIELD, the field holding each "
                        "stroke's class."
                    )
                elif layer.fields().indexOf(field) < 0:
                    errors.append(f"SCRIBBLES ({layer.name()}) has no field {field!r}.")
        return errors

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        """Run ``python -m core <method>`` and load the styled clusters."""
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        source = clip_to_extent(
            self, parameters, layer, raster_source(layer, "INPUT"), context, feedback
        )
        output = self.output_path(parameters, "OUTPUT", context, "clusters.tif")
        args = [
            self.method,
            source,
            output,
            "--overwrite",
            *self.stretch_args(parameters, context),
            "--mode",
            MODES[self.parameterAsEnum(parameters, "MODE", context)],
            *self.device_args(parameters, context),
            SEED.option,
            str(self.parameterAsInt(parameters, "SEED", context)),
        ]
        threads = self.parameterAsInt(parameters, "THREADS", context)
        if threads > 0:
            args += ["--threads", str(threads)]
        args += self.spec_args(
            (*UNSUPERVISED[self.method], *UNSUPERVISED_COMMON), parameters, context
        )
        files = [output]
        outputs: dict[str, Any] = {"OUTPUT": output}
        class_map = None
        if self.method in SCRIBBLE_METHODS:
            scribble_args = self._scribble_args(parameters, context)
            args += scribble_args
            class_map = self._class_map_path(parameters, context, feedback, bool(scribble_args))
            if class_map:
                args += [
                    "--class-map",
                    class_map,
                    "--unscribbled",
                    UNSCRIBBLED[self.parameterAsEnum(parameters, "UNSCRIBBLED", context)],
                ]
                names = self.classes_text(parameters, "SCRIBBLE_CLASSES", context)
                if names:
                    args += ["--scribble-classes", names]
                files.append(class_map)
        reference = self.parameterAsRasterLayer(parameters, "REFERENCE", context)
        mapped = mapping = None
        if reference is not None:
            reference_file = raster_source(reference, "REFERENCE")
            if not reference.crs().isValid():  # pixel coordinates: cut the same window
                reference_file = clip_to_extent(
                    self, parameters, reference, reference_file, context, window_of=layer
                )
            args += [
                "--reference",
                reference_file,
                "--assignment",
                ASSIGNMENTS[self.parameterAsEnum(parameters, "ASSIGNMENT", context)],
            ]
            names = self.classes_text(parameters, "REFERENCE_CLASSES", context)
            if names:
                args += ["--reference-classes", names]
            for value in self.numbers(parameters, "REFERENCE_IGNORE", context):
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
        if class_map:
            named = result.get("CLASS_MAP_CLASSES") or []
            attach_styler(
                context, class_map, LayerStyler(f"{name} classes from the scribbles", classes=named)
            )
            outputs["OUTPUT_CLASSES"] = class_map
            feedback.pushInfo(self.tr(f"Classes from the scribbles: {len(named)} classes."))
        if mapped:
            mapped_classes = result.get("MAPPED_CLASSES") or []
            attach_styler(
                context, mapped, LayerStyler(f"{name} clusters as classes", classes=mapped_classes)
            )
            outputs["OUTPUT_MAPPED"] = mapped
        if mapping:
            outputs["OUTPUT_MAPPING"] = mapping
        return outputs

    def _class_map_path(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        has_scribbles: bool,
    ) -> str | None:
        """Return the class map file when asked for and possible (it needs scribbles)."""
        if parameters.get("OUTPUT_CLASSES") is None:
            return None
        path = self.parameterAsOutputLayer(parameters, "OUTPUT_CLASSES", context)
        if not path:
            return None
        if not has_scribbles:
            feedback.pushInfo(
                self.tr("No scribbles, so no classes from the scribbles (OUTPUT_CLASSES).")
            )
            return None
        return absolute(path)

    def _scribble_args(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> list[str]:
        """Scribble options: a raster file, or a vector file (other layers are saved)."""
        layer = self.parameterAsLayer(parameters, "SCRIBBLES", context)
        if layer is None:
            return []
        if isinstance(layer, QgsRasterLayer):
            path = raster_source(layer, "SCRIBBLES")
            if not layer.crs().isValid():
                input_layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
                path = clip_to_extent(self, parameters, layer, path, context, window_of=input_layer)
            return ["--scribbles", path]
        if not isinstance(layer, QgsVectorLayer):
            raise QgsProcessingException("SCRIBBLES must be a vector or a raster layer.")
        field = self.parameterAsString(parameters, "SCRIBBLE_FIELD", context)
        if not field:
            raise QgsProcessingException(
                "Vector scribbles need SCRIBBLE_FIELD, the field holding each stroke's class."
            )
        if layer.fields().indexOf(field) < 0:
            raise QgsProcessingException(f"SCRIBBLES has no field {field!r}.")
        path = vector_layer_path(layer, context, "scribbles")
        return ["--scribbles", path, "--scribble-field", field]


class IsbAlgorithm(UnsupervisedAlgorithm):
    """Kanezaki's unsupervised segmentation by backpropagation (``landseg:isb``)."""

    algorithm_id = "isb"
    display_name = "ISB: segmentation by backpropagation"
    method = "isb"
    short_description = "Clusters found by a CNN trained on the raster itself (Kanezaki 2018)."
    keywords = (*UNSUPERVISED_TAGS, "ISB", "superpixels")


class DfcAlgorithm(UnsupervisedAlgorithm):
    """Differentiable feature clustering (``landseg:dfc``)."""

    algorithm_id = "dfc"
    display_name = "DFC: differentiable feature clustering"
    method = "dfc"
    short_description = "Clusters by differentiable feature clustering, guided by scribbles."
    keywords = (*UNSUPERVISED_TAGS, "DFC", "scribbles", "semi-supervised")


class WnetAlgorithm(UnsupervisedAlgorithm):
    """W-Net (``landseg:wnet``)."""

    algorithm_id = "wnet"
    display_name = "W-Net: unsupervised segmentation"
    method = "wnet"
    short_description = "Clusters by a W-Net autoencoder with a soft normalized-cut loss."
    keywords = (*UNSUPERVISED_TAGS, "W-Net", "autoencoder", "normalized cut")
