"""Base class of LandSeg algorithms: names, groups, help and icons in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterMatrix,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingUtils,
    QgsReferencedRectangle,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ...core.params import DEFAULT_PERCENTILES, NORMALIZATION_LABELS, NORMALIZATIONS, Param
from ..checks import bands_error, classes_text, destination_path, duplicates_error
from ..devices import DEVICE_HELP, device_options
from ..resources import help_html, icon_path
from ..sources import absolute, raster_source

__all__ = [
    "LABELS",
    "LandSegAlgorithm",
    "VrtDestination",
    "absolute",
    "raster_source",
]

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

#: Parameter types whose text values name layers (ids, names or files).
LAYER_TYPES = frozenset({"raster", "vector", "source", "layer", "multilayer"})

#: Short dialog labels of the engine's tuning parameters; their one-line ``help`` becomes
#: the tooltip, and resources/help/<id>.html explains them in full.
LABELS = {
    "n_segments": "Number of segments",
    "compactness": "Compactness",
    "sigma": "Smoothing (pixels)",
    "max_num_iter": "k-means iterations",
    "enforce_connectivity": "Connected segments only",
    "min_size_factor": "Smallest segment (x mean size)",
    "max_size_factor": "Largest segment (x mean size)",
    "kernel_size": "Kernel size (pixels)",
    "max_dist": "Maximum distance",
    "ratio": "Colour / space ratio",
    "scale": "Scale",
    "min_size": "Minimum size (pixels)",
    "max_clusters": "Maximum clusters",
    "min_clusters": "Minimum clusters",
    "max_iter": "Iterations",
    "learning_rate": "Learning rate",
    "n_conv": "Convolution blocks",
    "segment_size": "Superpixel size (pixels)",
    "mu": "Spatial continuity weight",
    "scribble_weight": "Scribble weight",
    "hidden": "Channels of the first level",
    "dropout": "Dropout",
    "radius": "N-cut radius (pixels)",
    "sigma_i": "N-cut feature scale",
    "sigma_x": "N-cut spatial scale (pixels)",
    "ncut_weight": "N-cut weight",
    "min_segment": "Smallest segment (pixels)",
    "tile_size": "Tile size (pixels)",
    "n_tiles": "Tiles sampled",
    "batch_size": "Tiles per batch",
    "seed": "Random seed",
}

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
    #: One line for the toolbox tooltip (``shortDescription``).
    short_description = ""
    #: Words the toolbox search finds the algorithm by (``tags``).
    keywords: tuple[str, ...] = ()

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

    def prepareAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> bool:
        """Look the layer parameters up now, on the thread that owns the project.

        QGIS prepares an algorithm on the main thread and then runs it in a task's thread.
        A layer looked up there goes through the project's layer store, and in QGIS 3.40
        ``QgsProject::layerStore()`` also clears the project's cached expression scope,
        racing with the map canvas rebuilding it (a crash). The ``parameterAs*`` layer
        lookups below then receive the layers themselves, and an extent given as text
        (which may name a layer) receives the rectangle and CRS it stands for.
        """
        self._prepared = {}
        for definition in self.parameterDefinitions():
            name, value = definition.name(), parameters.get(definition.name())
            if value in (None, "", []):
                continue
            if definition.type() == "extent" and isinstance(value, str):
                rect = super().parameterAsExtent(parameters, name, context)
                crs = super().parameterAsExtentCrs(parameters, name, context)
                if not rect.isNull():
                    self._prepared[name] = (value, QgsReferencedRectangle(rect, crs))
            elif definition.type() not in LAYER_TYPES:
                continue
            elif definition.type() == "multilayer":
                if isinstance(value, list) and all(isinstance(item, str) for item in value):
                    layers = super().parameterAsLayerList(parameters, name, context)
                    if len(layers) == len(value):
                        self._prepared[name] = (value, layers)
            elif isinstance(value, str):
                layer = super().parameterAsLayer(parameters, name, context)
                if layer is not None:
                    self._prepared[name] = (value, layer)
        return True

    def _with_prepared(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Return the parameters with the layers and extents :meth:`prepareAlgorithm` found.

        A value given since (another run of this instance) is looked up as it is.
        """
        prepared: dict[str, tuple[Any, Any]] = getattr(self, "_prepared", {})
        found = {
            name: resolved
            for name, (value, resolved) in prepared.items()
            if parameters.get(name) == value
        }
        return {**parameters, **found} if found else parameters

    def parameterAsLayer(self, parameters: dict[str, Any], name: str, *args: Any) -> Any:
        """Return a layer parameter (the one looked up in preparation, if any)."""
        return super().parameterAsLayer(self._with_prepared(parameters), name, *args)

    def parameterAsRasterLayer(self, parameters: dict[str, Any], name: str, *args: Any) -> Any:
        """Return a raster layer parameter (looked up in preparation, if it was)."""
        return super().parameterAsRasterLayer(self._with_prepared(parameters), name, *args)

    def parameterAsVectorLayer(self, parameters: dict[str, Any], name: str, *args: Any) -> Any:
        """Return a vector layer parameter (looked up in preparation, if it was)."""
        return super().parameterAsVectorLayer(self._with_prepared(parameters), name, *args)

    def parameterAsLayerList(self, parameters: dict[str, Any], name: str, *args: Any) -> Any:
        """Return a multiple-layers parameter (looked up in preparation, if it was)."""
        return super().parameterAsLayerList(self._with_prepared(parameters), name, *args)

    def parameterAsExtent(self, parameters: dict[str, Any], name: str, *args: Any) -> Any:
        """Return an extent parameter (its layer looked up in preparation, if any)."""
        return super().parameterAsExtent(self._with_prepared(parameters), name, *args)

    def parameterAsExtentCrs(self, parameters: dict[str, Any], name: str, *args: Any) -> Any:
        """Return an extent parameter's CRS (as found in preparation, if it was)."""
        return super().parameterAsExtentCrs(self._with_prepared(parameters), name, *args)

    def parameterAsSource(self, parameters: dict[str, Any], name: str, *args: Any) -> Any:
        """Return a feature source parameter (its layer looked up in preparation)."""
        return super().parameterAsSource(self._with_prepared(parameters), name, *args)

    def parameterAsCompatibleSourceLayerPathAndLayerName(
        self, parameters: dict[str, Any], name: str, *args: Any
    ) -> Any:
        """Return a vector file for a source parameter (its layer looked up in preparation)."""
        return super().parameterAsCompatibleSourceLayerPathAndLayerName(
            self._with_prepared(parameters), name, *args
        )

    def group(self) -> str:
        """Return the toolbox group."""
        return self.tr(GROUPS[self.group_id])

    def groupId(self) -> str:
        """Return the stable group id."""
        return self.group_id

    def shortDescription(self) -> str:
        """Return the one-line description shown in the toolbox tooltip."""
        return self.tr(self.short_description)

    def tags(self) -> list[str]:
        """Return the search words of the toolbox ("OBIA", "k-means", "deep learning"...)."""
        return [self.tr(tag) for tag in self.keywords]

    def shortHelpString(self) -> str:
        """Return the help shown beside the dialog: resources/help/<id>.html and notes.

        The notes on inputs shared by several algorithms (extent, polygon layers, class
        tables, device) are written once, here.
        """
        notes = []
        names = {d.name(): d for d in self.parameterDefinitions()}
        if "EXTENT" in names:
            notes.append(
                "<b>EXTENT</b> (optional): process only this region, given in any CRS (the "
                "map canvas, a layer's extent or drawn). It is snapped outwards to whole "
                "pixels of the input, so the outputs cover the extent on the input's pixel "
                "grid; band statistics (the stretch) come from the region. A raster without "
                "a CRS takes the extent in pixel coordinates."
            )
        if {"LABEL_POLYGONS", "REFERENCE_POLYGONS", "SCRIBBLES"} & set(names):
            notes.append(
                "Polygon inputs take any vector layer: a file, a scratch layer, a database "
                "layer, a filtered layer, or its selected features only. The engine gets the "
                "file itself when the layer is a plain file, otherwise a temporary GeoPackage."
            )
        tables = [n for n in ("CLASSES", "REFERENCE_CLASSES") if n in names]
        if tables:
            notes.append(
                f"<b>{tables[0]}</b>: a table of classes, one row each: value, name and "
                "colour (#rrggbb; empty: generated). Scripts and qgis_process may give the "
                "text form <code>1:forest:#1b7837,2:water:#2166ac</code>."
            )
        if "DEVICE" in names:
            notes.append(f"<b>DEVICE</b> (Advanced): {DEVICE_HELP}")
        html = help_html(self.algorithm_id)
        if notes:
            html += "<h3>Inputs</h3>" + "".join(f"<p>{self.tr(note)}</p>" for note in notes)
        return html

    def helpUrl(self) -> str:
        """Return the README section of this algorithm."""
        return f"{HOMEPAGE}#{self.algorithm_id}"

    def icon(self) -> QIcon:
        """Return the algorithm icon."""
        return QIcon(icon_path(self.algorithm_id))

    def svgIconPath(self) -> str:
        """Return the algorithm icon's path."""
        return icon_path(self.algorithm_id)

    def checkParameterValues(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        """Check the values the engine would refuse, before the engine starts.

        QGIS's own checks (mandatory values, types) come first; then :meth:`check`.
        """
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        errors = [error for error in self.check(parameters, context) if error]
        return (False, errors[0]) if errors else (True, "")

    def check(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str | None]:
        """Return error messages (``None`` for a passed check); subclasses add theirs."""
        return [self.duplicate_outputs_error(parameters, context)]

    def duplicate_outputs_error(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> str | None:
        """No two file outputs may be the same file, and none may replace an input layer."""
        outputs = {
            d.name(): destination_path(parameters.get(d.name()))
            for d in self.destinationParameterDefinitions()
        }
        inputs = []
        for name in ("INPUT", "PREDICTION", "REFERENCE"):
            if self.parameterDefinition(name) is not None and parameters.get(name) is not None:
                layer = self.parameterAsRasterLayer(parameters, name, context)
                if layer is not None:
                    inputs.append(layer.source())
        return duplicates_error(outputs, inputs)

    def bands_error(
        self, parameters: dict[str, Any], context: QgsProcessingContext, layer_name: str = "INPUT"
    ) -> str | None:
        """``BANDS`` must be bands of the input raster."""
        if parameters.get("BANDS") in (None, "", []):
            return None
        layer = self.parameterAsRasterLayer(parameters, layer_name, context)
        if layer is None:
            return None
        bands = self.parameterAsInts(parameters, "BANDS", context)
        return bands_error("BANDS", bands, layer.bandCount(), layer.name())

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
                self.tr("Bands"),
                parentLayerParameterName="INPUT",
                optional=True,
                allowMultiple=True,
            )
        )
        self.parameterDefinition("BANDS").setHelp(self.tr("Bands to use; none chosen: all."))

    def add_extent(self, help_text: str = "") -> None:
        """Add the optional ``EXTENT``: only the pixels inside it are processed."""
        definition = QgsProcessingParameterExtent("EXTENT", self.tr("Extent"), optional=True)
        definition.setHelp(
            self.tr(
                help_text
                or "Process only this region (any CRS; the map canvas, a layer or drawn). "
                "It is snapped outwards to whole pixels of the input, so the outputs "
                "cover the extent on the input's grid. Empty: the whole raster."
            )
        )
        self.addParameter(definition)

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
                self.tr("All-zero pixels are nodata"),
                defaultValue=False,
            )
        )
        self.parameterDefinition("NODATA_ZERO").setHelp(
            self.tr("Treat pixels that are 0 in every band as nodata (besides the bands' nodata).")
        )

    def add_percentiles(self) -> None:
        """Add the advanced ``PERCENTILE_LOW`` and ``PERCENTILE_HIGH`` of the stretch."""
        for key, label, value in (
            ("PERCENTILE_LOW", "Stretch: low percentile", DEFAULT_PERCENTILES[0]),
            ("PERCENTILE_HIGH", "Stretch: high percentile", DEFAULT_PERCENTILES[1]),
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

        label = self.tr(LABELS.get(param.name, param.help))
        if param.kind == "bool":
            definition: QgsProcessingParameterDefinition = QgsProcessingParameterBoolean(
                param.key, label, defaultValue=bool(param.default)
            )
        else:
            number_type = INTEGER if param.kind == "int" else DOUBLE
            definition = QgsProcessingParameterNumber(
                param.key, label, type=number_type, defaultValue=param.default
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
            "DASK_SCHEDULER", self.tr("Dask scheduler"), optional=True
        )
        definition.setHelp(
            self.tr(
                "Empty: no Dask. tcp://host:8786 or local:N: "
                "run the window work as Dask tasks on a cluster: the address of a running "
                "scheduler, or local:N for N worker processes on this machine. The result "
                "is the same as without Dask. Workers need LandSeg's engine environment."
            )
        )
        self.add_advanced(definition)

    def dask_args(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str]:
        """Return ``["--dask-scheduler", value]``, or nothing when DASK_SCHEDULER is empty."""
        value = (self.parameterAsString(parameters, "DASK_SCHEDULER", context) or "").strip()
        return ["--dask-scheduler", value] if value else []

    def add_device(self) -> None:
        """Add the advanced ``DEVICE``: a list of device names (strings, not indices).

        Static strings keep scripts and models portable: ``DEVICE=cuda`` means the same on
        every machine, whatever the order of the list there.
        """
        definition = QgsProcessingParameterEnum(
            "DEVICE",
            self.tr("Device"),
            options=device_options(),
            defaultValue="auto",
            usesStaticStrings=True,
        )
        definition.setHelp(self.tr(DEVICE_HELP))
        self.add_advanced(definition)

    def device_args(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str]:
        """Return ``["--device", name]``."""
        name = self.parameterAsEnumString(parameters, "DEVICE", context) or "auto"
        return ["--device", name]

    def add_class_table(self, name: str, label: str, *, advanced: bool = False) -> None:
        """Add a class table (value, name, colour) that also takes ``1:forest:#1b7837,...``."""
        definition = QgsProcessingParameterMatrix(
            name,
            self.tr(label),
            numberRows=0,
            hasFixedNumberRows=False,
            headers=[self.tr("Value"), self.tr("Name"), self.tr("Colour (#rrggbb)")],
            optional=True,
        )
        definition.setHelp(
            self.tr(
                "One row per class: pixel value, name and colour (#rrggbb; empty: generated). "
                "Scripts and qgis_process may give the text form "
                "1:forest:#1b7837,2:water:#2166ac."
            )
        )
        if advanced:
            self.add_advanced(definition)
        else:
            self.addParameter(definition)

    def classes_text(
        self, parameters: dict[str, Any], name: str, context: QgsProcessingContext
    ) -> str:
        """Return a class table parameter in the engine's ``1:forest:#1b7837,...`` form."""
        if parameters.get(name) in (None, "", []):
            return ""
        return classes_text(self.parameterAsMatrix(parameters, name, context))

    def add_numbers(self, name: str, label: str, help_text: str, *, advanced: bool = False) -> None:
        """Add a list of numbers (a one-column table) that also takes ``0,255``."""
        definition = QgsProcessingParameterMatrix(
            name,
            self.tr(label),
            numberRows=0,
            hasFixedNumberRows=False,
            headers=[self.tr("Value")],
            optional=True,
        )
        definition.setHelp(self.tr(help_text))
        if advanced:
            self.add_advanced(definition)
        else:
            self.addParameter(definition)

    def numbers(
        self, parameters: dict[str, Any], name: str, context: QgsProcessingContext
    ) -> list[str]:
        """Return the non-empty values of a list-of-numbers parameter, as text."""
        if parameters.get(name) in (None, "", []):
            return []
        values = self.parameterAsMatrix(parameters, name, context)
        return [str(v).strip() for v in values if v is not None and str(v).strip()]


class VrtDestination(QgsProcessingParameterRasterDestination):
    """A raster destination that is a GDAL VRT (``.vrt``), as QGIS's own Build VRT has."""

    def clone(self) -> VrtDestination:
        """Return a copy (QGIS clones parameter definitions)."""
        copy = VrtDestination(self.name(), self.description())
        copy.setFlags(self.flags())
        copy.setHelp(self.help())
        copy.setCreateByDefault(self.createByDefault())
        return copy

    def defaultFileExtension(self) -> str:
        """Return ``vrt``: temporary outputs are VRTs too."""
        return "vrt"

    def createFileFilter(self) -> str:
        """Offer VRT files in the file dialog."""
        return QCoreApplication.translate("LandSeg", "VRT files (*.vrt *.VRT)")

    def supportedOutputRasterLayerExtensions(self) -> Sequence[str]:
        """Return ``["vrt"]``."""
        return ["vrt"]
