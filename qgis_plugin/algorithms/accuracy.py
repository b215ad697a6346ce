"""Processing algorithm ``landseg:accuracy``: accuracy report of a classified raster."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
)

from ..checks import class_table_error, extension_error, numbers_error
from ..engine import run_engine
from ..sources import absolute, clip_to_extent, raster_source, vector_source
from ..styling import LayerStyler, attach_styler
from .base import POLYGONS, LandSegAlgorithm

MODES = ("classes", "clusters")
ASSIGNMENTS = ("hungarian", "majority")
NUMBERS = {
    "OVERALL_ACCURACY": "Overall accuracy",
    "KAPPA": "Cohen's kappa",
    "MEAN_IOU": "Mean IoU",
    "MACRO_F1": "Macro F1",
    "ARI": "Adjusted Rand index",
}


class AccuracyAlgorithm(LandSegAlgorithm):
    """Confusion matrix, OA, kappa, per-class metrics, RI/ARI and an HTML report."""

    algorithm_id = "accuracy"
    display_name = "Accuracy assessment"
    group_id = "assessment"
    short_description = "Confusion matrix, overall accuracy, kappa, IoU and F1 against a reference."
    keywords = (
        "accuracy",
        "assessment",
        "validation",
        "confusion matrix",
        "error matrix",
        "kappa",
        "IoU",
        "F1",
        "ARI",
        "classification",
        "clustering",
    )

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        """Declare prediction, reference, options, report files and numeric outputs."""
        self.addParameter(
            QgsProcessingParameterRasterLayer("PREDICTION", self.tr("Classified raster"))
        )
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                "REFERENCE", self.tr("Reference raster"), optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "REFERENCE_POLYGONS",
                self.tr("Reference polygons"),
                types=[POLYGONS],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                "CLASS_FIELD",
                self.tr("Class field"),
                parentLayerParameterName="REFERENCE_POLYGONS",
                optional=True,
            )
        )
        self.add_extent(
            "Assess only this region (any CRS), snapped outwards to whole pixels of the "
            "classified raster. Empty: the whole raster."
        )
        self.add_numbers(
            "IGNORE_VALUE",
            "Values to ignore",
            "Values left out of the assessment (e.g. 0 or 255); scripts may give 0,255.",
        )
        for key, text in (
            ("PREDICTION", "The classified or cluster raster to assess."),
            (
                "REFERENCE",
                "A raster of the true classes (warped onto the classified raster's "
                "grid). Give this or reference polygons.",
            ),
            (
                "REFERENCE_POLYGONS",
                "Polygons of the true classes instead of a raster: any "
                "polygon layer (a scratch layer, a filtered layer, selected features only).",
            ),
            ("CLASS_FIELD", "Integer class field of the reference polygons."),
        ):
            self.parameterDefinition(key).setHelp(self.tr(text))
        self.addParameter(
            QgsProcessingParameterEnum(
                "MODE",
                self.tr("Mode"),
                options=[
                    self.tr("Classes (same values)"),
                    self.tr("Clusters (mapped to classes)"),
                ],
                defaultValue=0,
            )
        )
        self.add_advanced(
            QgsProcessingParameterEnum(
                "ASSIGNMENT",
                self.tr("Cluster mapping"),
                options=[
                    self.tr("One-to-one (Hungarian)"),
                    self.tr("Many-to-one (majority)"),
                ],
                defaultValue=0,
            )
        )
        self.add_class_table("CLASSES", "Class table", advanced=True)
        self.add_dask_scheduler()
        # Optional (a temporary file when left out), so a model that shows it as an
        # output does not make qgis_process ask for it.
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_HTML",
                self.tr("Accuracy report"),
                self.tr("HTML files (*.html)"),
                optional=True,
                createByDefault=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_CSV",
                self.tr("Confusion matrix (CSV)"),
                self.tr("CSV files (*.csv)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_JSON",
                self.tr("All metrics (JSON)"),
                self.tr("JSON files (*.json)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "OUTPUT_ERRORS",
                self.tr("Correct / wrong pixels"),
                optional=True,
                createByDefault=False,
            )
        )
        for key, label in NUMBERS.items():
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    def check(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str | None]:
        """One reference, its class field, ignored values, class table, output files."""
        raster = parameters.get("REFERENCE") not in (None, "")
        polygons = parameters.get("REFERENCE_POLYGONS") not in (None, "")
        errors: list[str | None] = [*super().check(parameters, context)]
        if raster == polygons:
            errors.append(
                "Give either a reference raster (REFERENCE) or reference polygons "
                "(REFERENCE_POLYGONS with CLASS_FIELD), not both."
            )
        if polygons and not self.parameterAsString(parameters, "CLASS_FIELD", context):
            errors.append("Reference polygons need CLASS_FIELD, the field holding each class.")
        errors += [
            numbers_error("IGNORE_VALUE", self.numbers(parameters, "IGNORE_VALUE", context)),
            class_table_error(
                "CLASSES", self.classes_text(parameters, "CLASSES", context), allow_zero=True
            ),
            extension_error("OUTPUT_HTML", parameters.get("OUTPUT_HTML"), ("html", "htm")),
            extension_error("OUTPUT_CSV", parameters.get("OUTPUT_CSV"), ("csv",)),
            extension_error("OUTPUT_JSON", parameters.get("OUTPUT_JSON"), ("json",)),
            extension_error("OUTPUT_ERRORS", parameters.get("OUTPUT_ERRORS"), ("tif", "tiff")),
        ]
        return errors

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        """Run ``python -m core accuracy`` and return the numbers and files."""
        layer = self.parameterAsRasterLayer(parameters, "PREDICTION", context)
        prediction = clip_to_extent(
            self, parameters, layer, raster_source(layer, "PREDICTION"), context, feedback
        )
        args = [
            "accuracy",
            prediction,
            "--overwrite",
            "--mode",
            MODES[self.parameterAsEnum(parameters, "MODE", context)],
            "--assignment",
            ASSIGNMENTS[self.parameterAsEnum(parameters, "ASSIGNMENT", context)],
        ]
        reference = self.parameterAsRasterLayer(parameters, "REFERENCE", context)
        polygons = vector_source(self, parameters, "REFERENCE_POLYGONS", context, feedback)
        if (reference is None) == (polygons is None):
            raise QgsProcessingException(
                "Give either a reference raster (REFERENCE) or reference polygons "
                "(REFERENCE_POLYGONS with CLASS_FIELD), not both."
            )
        if reference is not None:
            reference_file = raster_source(reference, "REFERENCE")
            if not reference.crs().isValid():  # pixel coordinates: cut the same window
                reference_file = clip_to_extent(
                    self, parameters, reference, reference_file, context, window_of=layer
                )
            args += ["--reference", reference_file]
        else:
            field = self.parameterAsString(parameters, "CLASS_FIELD", context)
            if not field:
                raise QgsProcessingException("Reference polygons need CLASS_FIELD.")
            args += ["--reference-polygons", polygons, "--class-field", field]
        error = numbers_error("IGNORE_VALUE", self.numbers(parameters, "IGNORE_VALUE", context))
        if error:
            raise QgsProcessingException(error)
        for value in self.numbers(parameters, "IGNORE_VALUE", context):
            args += ["--ignore", value]
        classes = self.classes_text(parameters, "CLASSES", context)
        if classes:
            args += ["--classes", classes]
        args += self.dask_args(parameters, context)
        files: dict[str, str] = {}
        for key, option in (
            ("OUTPUT_HTML", "--html"),
            ("OUTPUT_CSV", "--csv"),
            ("OUTPUT_JSON", "--json"),
        ):
            path = ""
            if parameters.get(key) is not None:
                path = absolute(self.parameterAsFileOutput(parameters, key, context))
            if not path and key == "OUTPUT_HTML":  # the report is always written
                path = QgsProcessingUtils.generateTempFilename("accuracy.html")
            if path:
                files[key] = path
                args += [option, path]
        if parameters.get("OUTPUT_ERRORS") is not None:
            files["OUTPUT_ERRORS"] = absolute(
                self.parameterAsOutputLayer(parameters, "OUTPUT_ERRORS", context)
            )
            args += ["--errors", files["OUTPUT_ERRORS"]]
        result = run_engine(args, feedback, outputs=list(files.values()))
        if "OUTPUT_ERRORS" in files:
            attach_styler(
                context,
                files["OUTPUT_ERRORS"],
                LayerStyler("Accuracy: correct (green) / wrong (red)"),
            )
        outputs: dict[str, Any] = dict(files)
        for key in NUMBERS:
            value = result.get(key)
            outputs[key] = float("nan") if value is None else float(value)
        return outputs
