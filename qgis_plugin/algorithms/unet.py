"""Processing algorithms ``landseg:trainunet`` and ``landseg:predictunet`` (supervised U-Net)."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsFeatureSink,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
    QgsProcessingUtils,
    QgsVectorLayer,
)

from ...core.params import ENCODERS, TRAIN_DEFAULTS
from ..engine import run_engine
from ..styling import LayerStyler, attach_styler, write_class_style
from .base import (
    DOUBLE,
    FOLDER,
    INTEGER,
    POLYGONS,
    RASTERS,
    LandSegAlgorithm,
    absolute,
    raster_source,
)


def _raster_files(layers: list[Any], parameter: str) -> list[str]:
    return [raster_source(layer, parameter) for layer in layers]


def _number_text(value: str, parameter: str) -> str:
    try:
        float(value)
    except ValueError:
        raise QgsProcessingException(
            f"{parameter} {value!r} is not a number (e.g. 0 or 255)."
        ) from None
    return value


class TrainUnetAlgorithm(LandSegAlgorithm):
    """Train a supervised U-Net and write a safetensors + JSON model file."""

    algorithm_id = "trainunet"
    display_name = "Train U-Net"
    group_id = "supervised"

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        """Declare images, labels, training settings and the model and report outputs."""
        d = TRAIN_DEFAULTS
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "INPUTS", self.tr("Images (same bands)"), layerType=RASTERS, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "LABELS",
                self.tr("Label rasters, in the same order as the images"),
                layerType=RASTERS,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                "LABEL_POLYGONS",
                self.tr("Label polygons (instead of label rasters)"),
                types=[POLYGONS],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                "CLASS_FIELD",
                self.tr("Class field of the label polygons"),
                parentLayerParameterName="LABEL_POLYGONS",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "TILE_FOLDER",
                self.tr("Tile folder with train/ val/ test/ image and label tiles (instead)"),
                behavior=FOLDER,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                "IGNORE_VALUE", self.tr("Label value of unlabelled pixels (e.g. 0)"), optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                "CLASSES",
                self.tr("Class names and colours (1:forest:#1b7837,2:water:#2166ac)"),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "ENCODER",
                self.tr("Encoder"),
                options=list(ENCODERS),
                defaultValue=ENCODERS.index(d["encoder"]),
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "EPOCHS",
                self.tr("Epochs (at most)"),
                type=INTEGER,
                defaultValue=d["epochs"],
                minValue=1,
            )
        )
        for key, label, kind, default, low, high in (
            ("BATCH_SIZE", "Batch size", INTEGER, d["batch_size"], 1, 1024),
            (
                "LEARNING_RATE",
                "Learning rate (AdamW, cosine schedule)",
                DOUBLE,
                d["learning_rate"],
                0.0,
                1.0,
            ),
            (
                "PATIENCE",
                "Early stopping: epochs without better validation mIoU (0: off)",
                INTEGER,
                d["patience"],
                0,
                10000,
            ),
            ("TILE_SIZE", "Tile size (multiple of 32)", INTEGER, d["tile_size"], 32, 2048),
            (
                "VALIDATION_FRACTION",
                "Share of labelled blocks held out for validation",
                DOUBLE,
                d["validation_fraction"],
                0.0,
                0.9,
            ),
            ("SEED", "Random seed", INTEGER, d["seed"], 0, None),
        ):
            parameter = QgsProcessingParameterNumber(
                key, self.tr(label), type=kind, defaultValue=default, minValue=low
            )
            if high is not None:
                parameter.setMaximum(high)
            self.add_advanced(parameter)
        self.add_advanced(
            QgsProcessingParameterRasterLayer(
                "VALIDATION_INPUT", self.tr("Separate validation image"), optional=True
            )
        )
        self.add_advanced(
            QgsProcessingParameterRasterLayer(
                "VALIDATION_LABELS", self.tr("Labels of the validation image"), optional=True
            )
        )
        self.add_advanced(
            QgsProcessingParameterFile(
                "ENCODER_WEIGHTS",
                self.tr("Pretrained encoder weights (local .safetensors or .pth state_dict)"),
                optional=True,
            )
        )
        for key, label, default in (
            ("CLASS_WEIGHTING", "Weight rare classes up", True),
            ("AUGMENT", "Augment (flips, rotations, brightness jitter)", True),
            ("NODATA_ZERO", "Treat pixels that are 0 in every band as nodata", False),
        ):
            self.add_advanced(
                QgsProcessingParameterBoolean(key, self.tr(label), defaultValue=default)
            )
        self.add_advanced(
            QgsProcessingParameterString(
                "DEVICE", self.tr("Device (auto, cpu, cuda, cuda:1)"), defaultValue="auto"
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_MODEL", self.tr("Model file"), self.tr("LandSeg model (*.safetensors)")
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_REPORT",
                self.tr("Training report"),
                self.tr("HTML files (*.html)"),
                optional=True,
            )
        )
        self.addOutput(QgsProcessingOutputNumber("VAL_MIOU", self.tr("Validation mean IoU")))
        self.addOutput(QgsProcessingOutputNumber("VAL_OA", self.tr("Validation overall accuracy")))
        self.addOutput(QgsProcessingOutputNumber("BEST_EPOCH", self.tr("Epoch kept")))

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        """Run ``python -m core trainunet``."""
        model = self.parameterAsFileOutput(parameters, "OUTPUT_MODEL", context)
        # Left blank (e.g. an intermediate model step): a temporary file, as QGIS does.
        model = absolute(model or QgsProcessingUtils.generateTempFilename("model.safetensors"))
        args = ["trainunet", model, "--overwrite"]
        inputs = _raster_files(self.parameterAsLayerList(parameters, "INPUTS", context), "INPUTS")
        labels = _raster_files(self.parameterAsLayerList(parameters, "LABELS", context), "LABELS")
        polygons = self.parameterAsVectorLayer(parameters, "LABEL_POLYGONS", context)
        folder = self.parameterAsFile(parameters, "TILE_FOLDER", context)
        if folder:
            args += ["--tile-folder", absolute(folder)]
        elif not inputs:
            raise QgsProcessingException("Give images (INPUTS) with labels, or a TILE_FOLDER.")
        for path in inputs:
            args += ["--input", path]
        if polygons is not None:
            if polygons.providerType() != "ogr":
                raise QgsProcessingException(
                    f"{polygons.name()} is not a file layer; save it (Export > Save Features "
                    "As…) and give that file."
                )
            field = self.parameterAsString(parameters, "CLASS_FIELD", context)
            if not field:
                raise QgsProcessingException("Label polygons need CLASS_FIELD.")
            args += ["--label-polygons", absolute(polygons.source()), "--class-field", field]
        for path in labels:
            args += ["--labels", path]
        if not folder and polygons is None and not labels:
            raise QgsProcessingException(
                "Give label rasters (LABELS) or label polygons (LABEL_POLYGONS with CLASS_FIELD)."
            )
        ignore = self.parameterAsString(parameters, "IGNORE_VALUE", context).strip()
        if ignore:
            args += ["--ignore-value", _number_text(ignore, "IGNORE_VALUE")]
        classes = self.parameterAsString(parameters, "CLASSES", context).strip()
        if classes:
            args += ["--classes", classes]
        args += ["--encoder", ENCODERS[self.parameterAsEnum(parameters, "ENCODER", context)]]
        for key, option in (
            ("EPOCHS", "--epochs"),
            ("BATCH_SIZE", "--batch-size"),
            ("PATIENCE", "--patience"),
            ("TILE_SIZE", "--tile-size"),
            ("SEED", "--seed"),
        ):
            args += [option, str(self.parameterAsInt(parameters, key, context))]
        for key, option in (
            ("LEARNING_RATE", "--learning-rate"),
            ("VALIDATION_FRACTION", "--validation-fraction"),
        ):
            args += [option, repr(self.parameterAsDouble(parameters, key, context))]
        val_image = self.parameterAsRasterLayer(parameters, "VALIDATION_INPUT", context)
        val_labels = self.parameterAsRasterLayer(parameters, "VALIDATION_LABELS", context)
        if (val_image is None) != (val_labels is None):
            raise QgsProcessingException(
                "Give both VALIDATION_INPUT and VALIDATION_LABELS, or neither."
            )
        if val_image is not None:
            args += [
                "--validation-input",
                raster_source(val_image, "VALIDATION_INPUT"),
                "--validation-labels",
                raster_source(val_labels, "VALIDATION_LABELS"),
            ]
        weights = self.parameterAsFile(parameters, "ENCODER_WEIGHTS", context)
        if weights:
            args += ["--encoder-weights", absolute(weights)]
        if not self.parameterAsBoolean(parameters, "CLASS_WEIGHTING", context):
            args.append("--no-class-weighting")
        if not self.parameterAsBoolean(parameters, "AUGMENT", context):
            args.append("--no-augment")
        if self.parameterAsBoolean(parameters, "NODATA_ZERO", context):
            args.append("--nodata-zero")
        device = self.parameterAsString(parameters, "DEVICE", context).strip() or "auto"
        args += ["--device", device]
        outputs: dict[str, Any] = {"OUTPUT_MODEL": model}
        if parameters.get("OUTPUT_REPORT") is not None:
            report = absolute(self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context))
            if report:
                args += ["--report", report]
                outputs["OUTPUT_REPORT"] = report
        result = run_engine(args, feedback, outputs=list(outputs.values()))
        for key in ("VAL_MIOU", "VAL_OA"):
            value = result.get(key)
            outputs[key] = float("nan") if value is None else float(value)
        outputs["BEST_EPOCH"] = int(result.get("BEST_EPOCH", 0))
        return outputs


class PredictUnetAlgorithm(LandSegAlgorithm):
    """Classify a raster with a LandSeg model file."""

    algorithm_id = "predictunet"
    display_name = "Classify with U-Net model"
    group_id = "supervised"

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        """Declare the raster (or a batch of rasters), the model file and the outputs."""
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                "INPUT", self.tr("Input raster (or a batch below)"), optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "MODEL",
                self.tr("Model file (.safetensors from Train U-Net)"),
                extension="safetensors",
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "INPUTS",
                self.tr("Batch: input rasters (instead of INPUT; one output each)"),
                layerType=RASTERS,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "INPUT_FOLDER",
                self.tr("Batch: folder of input rasters (.tif, .vrt, .jp2, .img)"),
                behavior=FOLDER,
                optional=True,
            )
        )
        self.add_advanced(
            QgsProcessingParameterNumber(
                "BATCH_SIZE", self.tr("Tiles per batch"), type=INTEGER, defaultValue=8, minValue=1
            )
        )
        self.add_advanced(
            QgsProcessingParameterString(
                "DEVICE", self.tr("Device (auto, cpu, cuda, cuda:1)"), defaultValue="auto"
            )
        )
        self.add_dask_scheduler()
        self.addParameter(  # optional for a batch; a temporary file by default
            QgsProcessingParameterRasterDestination(
                "OUTPUT", self.tr("Classes"), optional=True, createByDefault=True
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "OUTPUT_CONFIDENCE",
                self.tr("Confidence (probability of the class)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "OUTPUT_POLYGONS",
                self.tr("Class polygons"),
                type=POLYGONS,
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterFolderDestination(
                "OUTPUT_FOLDER",
                self.tr("Batch: output folder (<input name>.tif each)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "OUTPUT_MOSAIC",
                self.tr("Batch: VRT mosaic of the class rasters (.vrt)"),
                optional=True,
                createByDefault=False,
            )
        )

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        """Run ``python -m core predictunet`` and load the styled classes."""
        model = absolute(self.parameterAsFile(parameters, "MODEL", context))
        options = [
            "--overwrite",
            "--batch-size",
            str(self.parameterAsInt(parameters, "BATCH_SIZE", context)),
            "--device",
            self.parameterAsString(parameters, "DEVICE", context).strip() or "auto",
            *self.dask_args(parameters, context),
        ]
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        layers = self.parameterAsLayerList(parameters, "INPUTS", context)
        folder = self.parameterAsFile(parameters, "INPUT_FOLDER", context)
        if layers or folder:
            if layer is not None or (layers and folder):
                raise QgsProcessingException(
                    "Give one raster (INPUT), input rasters (INPUTS) or a folder of rasters "
                    "(INPUT_FOLDER): only one of them."
                )
            return self._batch(parameters, context, feedback, model, options, layers, folder)
        if layer is None:
            raise QgsProcessingException(
                "No input: give a raster (INPUT), or for a batch input rasters (INPUTS) or "
                "a folder of rasters (INPUT_FOLDER)."
            )
        if parameters.get("OUTPUT_MOSAIC") is not None:
            raise QgsProcessingException(
                "OUTPUT_MOSAIC is for a batch (INPUTS or INPUT_FOLDER); leave it out for one "
                "raster."
            )
        source = raster_source(layer, "INPUT")
        output = self.output_path(parameters, "OUTPUT", context, "classes.tif")
        args = ["predictunet", source, model, output, *options]
        files = [output]
        confidence = None
        if parameters.get("OUTPUT_CONFIDENCE") is not None:
            confidence = absolute(
                self.parameterAsOutputLayer(parameters, "OUTPUT_CONFIDENCE", context)
            )
            args += ["--confidence", confidence]
            files.append(confidence)
        polygons_tmp = None
        if parameters.get("OUTPUT_POLYGONS") is not None:
            polygons_tmp = QgsProcessingUtils.generateTempFilename("classes.gpkg")
            args += ["--polygons", polygons_tmp]
        result = run_engine(args, feedback, outputs=files)
        classes = result.get("CLASSES") or []
        write_class_style(output, classes)
        attach_styler(context, output, LayerStyler("U-Net classes", classes=classes))
        outputs: dict[str, Any] = {"OUTPUT": output}
        if confidence:
            attach_styler(context, confidence, LayerStyler("U-Net confidence"))
            outputs["OUTPUT_CONFIDENCE"] = confidence
        if polygons_tmp:
            outputs["OUTPUT_POLYGONS"] = self._copy_polygons(
                polygons_tmp, parameters, context, feedback
            )
            attach_styler(context, outputs["OUTPUT_POLYGONS"], LayerStyler("U-Net class polygons"))
        return outputs

    def _batch(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        model: str,
        options: list[str],
        layers: list[Any],
        folder: str,
    ) -> dict[str, Any]:
        """Classify many rasters into OUTPUT_FOLDER, with an optional VRT mosaic."""
        for key in ("OUTPUT_CONFIDENCE", "OUTPUT_POLYGONS"):
            if parameters.get(key) is not None:
                raise QgsProcessingException(
                    f"{key} is written for one raster (INPUT) only; leave it out for a batch, "
                    "or vectorize the class rasters with landseg:vectorize."
                )
        out_folder = self.parameterAsFileOutput(parameters, "OUTPUT_FOLDER", context)
        out_folder = absolute(out_folder or QgsProcessingUtils.generateTempFilename("classes"))
        expected = []
        if layers:
            sources = _raster_files(layers, "INPUTS")
            listing = QgsProcessingUtils.generateTempFilename("inputs.txt")
            with open(listing, "w", encoding="utf-8") as handle:
                handle.write("".join(f"{path}\n" for path in sources))
            spec = f"@{listing}"
            stems = [os.path.splitext(os.path.basename(path))[0] for path in sources]
            expected = [os.path.join(out_folder, f"{stem}.tif") for stem in stems]
        else:
            spec = absolute(folder)
        args = ["predictunet", spec, model, out_folder, *options]
        mosaic = self._mosaic_path(parameters, context)
        if mosaic:
            args += ["--mosaic", mosaic]
        result = run_engine(args, feedback, outputs=[*expected, mosaic or ""])
        classes = result.get("CLASSES") or []
        for path in result.get("OUTPUTS") or []:
            write_class_style(path, classes)
        feedback.pushInfo(f"{len(result.get('OUTPUTS') or [])} class rasters in {out_folder}")
        outputs: dict[str, Any] = {"OUTPUT_FOLDER": out_folder}
        if mosaic:
            write_class_style(mosaic, classes)
            attach_styler(context, mosaic, LayerStyler("U-Net classes (mosaic)", classes=classes))
            outputs["OUTPUT_MOSAIC"] = mosaic
        return outputs

    def _mosaic_path(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        """Return OUTPUT_MOSAIC as a .vrt path ('' when not wanted).

        A temporary output (QGIS names it ``.tif``) becomes ``.vrt``, and QGIS loads that.
        """
        if parameters.get("OUTPUT_MOSAIC") is None:
            return ""
        path = self.parameterAsOutputLayer(parameters, "OUTPUT_MOSAIC", context)
        if not path or os.path.splitext(path)[1].lower() == ".vrt":
            return absolute(path) if path else ""
        if not os.path.abspath(path).startswith(os.path.abspath(QgsProcessingUtils.tempFolder())):
            raise QgsProcessingException(
                f"OUTPUT_MOSAIC {path}: the mosaic is a GDAL VRT (it refers to the class "
                "rasters, no pixel is copied); give a .vrt file name."
            )
        vrt = os.path.splitext(path)[0] + ".vrt"
        loads = context.layersToLoadOnCompletion()
        if path in loads:
            loads[vrt] = loads.pop(path)
            context.setLayersToLoadOnCompletion(loads)
        return vrt

    def _copy_polygons(
        self,
        path: str,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> str:
        """Copy the engine's polygons into the user's sink (any format, or memory)."""
        layer = QgsVectorLayer(path, "classes", "ogr")
        if not layer.isValid():
            raise QgsProcessingException(f"Cannot read the polygons the engine wrote: {path}")
        sink, sink_id = self.parameterAsSink(
            parameters, "OUTPUT_POLYGONS", context, layer.fields(), layer.wkbType(), layer.crs()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT_POLYGONS"))
        for feature in layer.getFeatures():
            if feedback.isCanceled():
                break
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        del layer
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        return sink_id
