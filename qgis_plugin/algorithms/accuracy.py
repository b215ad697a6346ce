"""Processing algorithm ``landseg:accuracy``: accuracy report of a classified raster."""

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
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from ..engine import run_engine
from ..styling import LayerStyler, attach_styler
from .base import POLYGONS, LandSegAlgorithm, absolute, raster_source

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

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        """Declare prediction, reference, options, report files and numeric outputs."""
        self.addParameter(
            QgsProcessingParameterRasterLayer("PREDICTION", self.tr("Classified or cluster raster"))
        )
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                "REFERENCE", self.tr("Reference raster"), optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                "REFERENCE_POLYGONS",
                self.tr("Reference polygons (instead of a raster)"),
                types=[POLYGONS],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                "CLASS_FIELD",
                self.tr("Class field of the reference polygons"),
                parentLayerParameterName="REFERENCE_POLYGONS",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                "IGNORE_VALUE",
                self.tr("Values to leave out, comma-separated (e.g. 0 or 255)"),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "MODE",
                self.tr("Mode"),
                options=[
                    self.tr("Classes correspond (same values)"),
                    self.tr("Clusters: map each cluster to a reference class"),
                ],
                defaultValue=0,
            )
        )
        self.add_advanced(
            QgsProcessingParameterEnum(
                "ASSIGNMENT",
                self.tr("Cluster mapping"),
                options=[
                    self.tr("One-to-one (Hungarian assignment)"),
                    self.tr("Many-to-one (majority class of each cluster)"),
                ],
                defaultValue=0,
            )
        )
        self.add_advanced(
            QgsProcessingParameterString(
                "CLASSES",
                self.tr("Class names and colours (1:forest:#1b7837,2:water:#2166ac)"),
                optional=True,
            )
        )
        self.add_dask_scheduler()
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_HTML", self.tr("Accuracy report"), self.tr("HTML files (*.html)")
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

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        """Run ``python -m core accuracy`` and return the numbers and files."""
        prediction = raster_source(
            self.parameterAsRasterLayer(parameters, "PREDICTION", context), "PREDICTION"
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
        polygons = self.parameterAsVectorLayer(parameters, "REFERENCE_POLYGONS", context)
        if (reference is None) == (polygons is None):
            raise QgsProcessingException(
                "Give either a reference raster (REFERENCE) or reference polygons "
                "(REFERENCE_POLYGONS with CLASS_FIELD), not both."
            )
        if reference is not None:
            args += ["--reference", raster_source(reference, "REFERENCE")]
        else:
            if polygons.providerType() != "ogr":
                raise QgsProcessingException(
                    f"{polygons.name()} is not a file layer; save it (Export > Save Features "
                    "As…) and give that file."
                )
            field = self.parameterAsString(parameters, "CLASS_FIELD", context)
            if not field:
                raise QgsProcessingException("Reference polygons need CLASS_FIELD.")
            args += ["--reference-polygons", absolute(polygons.source()), "--class-field", field]
        ignore = self.parameterAsString(parameters, "IGNORE_VALUE", context)
        for value in filter(None, (v.strip() for v in ignore.split(","))):
            try:
                float(value)
            except ValueError:
                raise QgsProcessingException(
                    f"IGNORE_VALUE {value!r} is not a number; give numbers separated by "
                    "commas, e.g. 0,255."
                ) from None
            args += ["--ignore", value]
        classes = self.parameterAsString(parameters, "CLASSES", context)
        if classes:
            args += ["--classes", classes]
        args += self.dask_args(parameters, context)
        files: dict[str, str] = {}
        for key, option in (
            ("OUTPUT_HTML", "--html"),
            ("OUTPUT_CSV", "--csv"),
            ("OUTPUT_JSON", "--json"),
        ):
            if parameters.get(key) is not None:
                path = absolute(self.parameterAsFileOutput(parameters, key, context))
                if path:
                    files[key] = path
                    args += [option, path]
        if parameters.get("OUTPUT_ERRORS") is not None:
            files["OUTPUT_ERRORS"] = self.parameterAsOutputLayer(
                parameters, "OUTPUT_ERRORS", context
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
