"""Base class of LandSeg algorithms: names, groups, help and icons in one place."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterNumber,
    QgsProcessingUtils,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ...core.params import DEFAULT_PERCENTILES, NORMALIZATION_LABELS, NORMALIZATIONS, Param
from ..resources import help_html, icon_path

HOMEPAGE = "https://github.com/landseg/landseg"

# Scoped enums where this QGIS has them (3.36+ and QGIS 4), the 3.22 names otherwise.
try:
    from qgis.core import Qgis

    ADVANCED = Qgis.ProcessingParameterFlag.Advanced
    INTEGER = Qgis.ProcessingNumberParameterType.Integer
    DOUBLE = Qgis.ProcessingNumberParameterType.Double
    POLYGONS = Qgis.ProcessingSourceType.VectorPolygon
    RASTERS = Qgis.ProcessingSourceType.Raster
    FOLDER = Qgis.ProcessingFileParameterBehavior.Folder
except AttributeError:
    from qgis.core import QgsProcessing, QgsProcessingParameterFile

    POLYGONS = QgsProcessing.TypeVectorPolygon
    RASTERS = QgsProcessing.TypeRaster
    FOLDER = QgsProcessingParameterFile.Folder
    ADVANCED = QgsProcessingParameterDefinition.FlagAdvanced
    INTEGER = QgsProcessingParameterNumber.Integer
    DOUBLE = QgsProcessingParameterNumber.Double

GROUPS = {
    "superpixels": "Superpixels",
    "setup": "Setup",
    "assessment": "Assessment",
    "supervised": "Supervised",
    "postprocessing": "Post-processing",
    "unsuperviseddeep": "Unsupervised deep",
}


class LandSegAlgorithm(QgsProcessingAlgorithm):
    """Common behaviour of LandSeg algorithms.

    Subclasses set ``algorithm_id``, ``display_name`` and ``group_id`` and implement
    ``initAlgorithm`` and ``processAlgorithm`` (read parameters, run one engine command,
    return outputs).
    """

    algorithm_id = ""
    display_name = ""
    group_id = ""

    def tr(self, text: str) -> str:
        """Translate a string."""
        return QCoreApplication.translate("LandSeg", text)

    def createInstance(self) -> LandSegAlgorithm:
        """Return a fresh instance (QGIS runs each execution on its own instance)."""
        return type(self)()

    def name(self) -> str:
        """Return the algorithm id (public API: never renamed)."""
        return self.algorithm_id

    def displayName(self) -> str:
        """Return the name shown in the toolbox."""
        return self.tr(self.display_name)

    def group(self) -> str:
        """Return the toolbox group."""
        return self.tr(GROUPS[self.group_id])

    def groupId(self) -> str:
        """Return the stable group id."""
        return self.group_id

    def shortHelpString(self) -> str:
        """Return the help shown beside the dialog (resources/help/<id>.html)."""
        return help_html(self.algorithm_id)

    def helpUrl(self) -> str:
        """Return the README section of this algorithm."""
        return f"{HOMEPAGE}#{self.algorithm_id}"

    def icon(self) -> QIcon:
        """Return the algorithm icon."""
        return QIcon(icon_path(self.algorithm_id))

    def svgIconPath(self) -> str:
        """Return the algorithm icon's path."""
        return icon_path(self.algorithm_id)

    def add_advanced(self, parameter: QgsProcessingParameterDefinition) -> None:
        """Add a parameter under "Advanced parameters"."""
        parameter.setFlags(parameter.flags() | ADVANCED)
        self.addParameter(parameter)

    def output_path(
        self,
        parameters: dict[str, Any],
        name: str,
        context: QgsProcessingContext,
        filename: str,
    ) -> str:
        """Return the absolute file of a raster or vector destination parameter.

        An empty destination (a model output left blank in ``qgis_process``, for instance)
        becomes a temporary file named like ``filename``, as QGIS does for
        ``TEMPORARY_OUTPUT``, instead of an error.
        """
        path = self.parameterAsOutputLayer(parameters, name, context)
        if not path:
            path = QgsProcessingUtils.generateTempFilename(filename)
        return absolute(path)

    def add_input_and_bands(self) -> None:
        """Add ``INPUT`` (raster layer) and ``BANDS`` (optional, several, default all)."""
        from qgis.core import QgsProcessingParameterBand, QgsProcessingParameterRasterLayer

        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Input raster")))
        self.addParameter(
            QgsProcessingParameterBand(
                "BANDS",
                self.tr("Bands (default: all)"),
                parentLayerParameterName="INPUT",
                optional=True,
                allowMultiple=True,
            )
        )

    def add_stretch(self) -> None:
        """Add ``NORMALIZATION`` (band stretch) and ``NODATA_ZERO``."""
        from qgis.core import QgsProcessingParameterBoolean, QgsProcessingParameterEnum

        self.addParameter(
            QgsProcessingParameterEnum(
                "NORMALIZATION",
                self.tr("Band stretch"),
                options=[self.tr(NORMALIZATION_LABELS[n]) for n in NORMALIZATIONS],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                "NODATA_ZERO",
                self.tr("Treat pixels that are 0 in every band as nodata"),
                defaultValue=False,
            )
        )

    def add_percentiles(self) -> None:
        """Add the advanced ``PERCENTILE_LOW`` and ``PERCENTILE_HIGH`` of the stretch."""
        for key, label, value in (
            ("PERCENTILE_LOW", "Low percentile of the stretch", DEFAULT_PERCENTILES[0]),
            ("PERCENTILE_HIGH", "High percentile of the stretch", DEFAULT_PERCENTILES[1]),
        ):
            self.add_advanced(
                QgsProcessingParameterNumber(
                    key, self.tr(label), type=DOUBLE, defaultValue=value, minValue=0, maxValue=100
                )
            )

    def stretch_args(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str]:
        """Engine options of ``BANDS``, ``NORMALIZATION``, the percentiles and ``NODATA_ZERO``."""
        args = [
            "--normalization",
            NORMALIZATIONS[self.parameterAsEnum(parameters, "NORMALIZATION", context)],
            "--percentiles",
            str(self.parameterAsDouble(parameters, "PERCENTILE_LOW", context)),
            str(self.parameterAsDouble(parameters, "PERCENTILE_HIGH", context)),
        ]
        bands = self.parameterAsInts(parameters, "BANDS", context)
        if bands:
            args += ["--bands", ",".join(str(b) for b in bands)]
        if self.parameterAsBoolean(parameters, "NODATA_ZERO", context):
            args.append("--nodata-zero")
        return args

    def spec_args(
        self, specs: tuple[Param, ...], parameters: dict[str, Any], context: QgsProcessingContext
    ) -> list[str]:
        """Engine options of parameters declared with :meth:`add_spec`."""
        args: list[str] = []
        for param in specs:
            if param.kind == "bool":
                value = self.parameterAsBoolean(parameters, param.key, context)
                args.append(param.option if value else "--no-" + param.option[2:])
            elif param.kind == "int":
                args += [param.option, str(self.parameterAsInt(parameters, param.key, context))]
            else:
                args += [param.option, repr(self.parameterAsDouble(parameters, param.key, context))]
        return args

    def add_spec(self, param: Param) -> None:
        """Add a Processing parameter built from an engine parameter spec."""
        from qgis.core import QgsProcessingParameterBoolean

        if param.kind == "bool":
            definition: QgsProcessingParameterDefinition = QgsProcessingParameterBoolean(
                param.key, self.tr(param.help), defaultValue=bool(param.default)
            )
        else:
            number_type = INTEGER if param.kind == "int" else DOUBLE
            definition = QgsProcessingParameterNumber(
                param.key, self.tr(param.help), type=number_type, defaultValue=param.default
            )
            if param.minimum is not None:
                definition.setMinimum(param.minimum)
            if param.maximum is not None:
                definition.setMaximum(param.maximum)
        definition.setHelp(self.tr(param.help))
        if param.advanced:
            self.add_advanced(definition)
        else:
            self.addParameter(definition)

    def add_dask_scheduler(self) -> None:
        """Add the advanced DASK_SCHEDULER parameter (engine option --dask-scheduler)."""
        from qgis.core import QgsProcessingParameterString

        definition = QgsProcessingParameterString(
            "DASK_SCHEDULER",
            self.tr("Dask scheduler (tcp://host:8786 or local:N; empty: no Dask)"),
            optional=True,
        )
        definition.setHelp(
            self.tr(
                "Run the window work as Dask tasks on a cluster: the address of a running "
                "scheduler, or local:N for N worker processes on this machine. The result "
                "is the same as without Dask. Workers need LandSeg's engine environment."
            )
        )
        self.add_advanced(definition)

    def dask_args(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str]:
        """Return ``["--dask-scheduler", value]``, or nothing when DASK_SCHEDULER is empty."""
        value = (self.parameterAsString(parameters, "DASK_SCHEDULER", context) or "").strip()
        return ["--dask-scheduler", value] if value else []


def raster_source(layer: QgsRasterLayer | None, parameter: str) -> str:
    """Return the file a raster layer reads, or explain why the engine cannot read it."""
    if layer is None:
        raise QgsProcessingException(f"No raster layer given for {parameter}.")
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"{layer.name()} is a {layer.providerType()} layer, not a file. LandSeg reads "
            "raster files: save the layer first (right-click > Export > Save As… GeoTIFF) "
            "and give that file."
        )
    return absolute(layer.source())


def absolute(path: str) -> str:
    """Make a file path absolute: the engine runs in the plugin folder, not QGIS's."""
    file_part, sep, options = path.partition("|")
    if file_part and not os.path.isabs(file_part) and os.path.exists(file_part):
        return os.path.abspath(file_part) + sep + options
    if (
        file_part
        and not os.path.isabs(file_part)
        and "://" not in file_part
        and not file_part.startswith(("/vsi", "memory:"))
    ):
        return os.path.abspath(file_part) + sep + options
    return path
