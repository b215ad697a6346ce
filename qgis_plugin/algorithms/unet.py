"""Processing algorithms ``landseg:trainunet`` and ``landseg:predictunet`` (supervised U-Net)."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
)

from ...core.params import (
    ENCODERS,
    PREDICT_BATCH_SIZE,
    PREDICT_DEFAULTS,
    TRAIN_DEFAULTS,
    UNET_HELP,
    UNET_NORMALIZATION_LABELS,
    UNET_NORMALIZATIONS,
    WEIGHT_AVERAGING_LABELS,
    WEIGHT_AVERAGING_MODES,
)
from ..checks import class_table_error, destination_path, extension_error
from ..engine import run_engine
from ..sources import absolute, clip_to_extent, copy_polygons, raster_source, vector_source
from ..styling import LayerStyler, attach_styler
from .base import (
    DOUBLE,
    FOLDER,
    INTEGER,
    POLYGONS,
    RASTERS,
    LandSegAlgorithm,
    VrtDestination,
)

UNET_TAGS = (
    "deep learning",
    "supervised",
    "supervised classification",
    "classification",
    "U-Net",
    "semantic segmentation",
    "neural network",
    "CNN",
    "land cover",
    "PyTorch",
)


def _raster_files(layers: list[Any], parameter: str) -> list[str]:
    return [raster_source(layer, parameter) for layer in layers]


def _given(parameters: dict[str, Any], name: str) -> bool:
    """Whether an optional parameter has a value (not None, '' or an empty list)."""
    return parameters.get(name) not in (None, "", [])


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class TrainUnetAlgorithm(LandSegAlgorithm):
    """Train a supervised U-Net and write a safetensors + JSON model file."""

    algorithm_id = "trainunet"
    display_name = "Train U-Net"
    group_id = "supervised"
    short_description = "Train a U-Net on images with label rasters or polygons; write a model."
    keywords = (*UNET_TAGS, "training", "train")

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        """Declare images, labels, training settings and the model and report outputs."""
        d = TRAIN_DEFAULTS
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "INPUTS", self.tr("Images"), layerType=RASTERS, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "LABELS", self.tr("Label rasters"), layerType=RASTERS, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "LABEL_POLYGONS", self.tr("Label polygons"), types=[POLYGONS], optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                "CLASS_FIELD",
                self.tr("Class field"),
                parentLayerParameterName="LABEL_POLYGONS",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "TILE_FOLDER", self.tr("Tile folder"), behavior=FOLDER, optional=True
            )
        )
        for key, text in (
            (
                "INPUTS",
                "Image rasters with the same bands. Train on images with label "
                "rasters or label polygons, or on a tile folder instead.",
            ),
            (
                "LABELS",
                "One label raster per image, in the same order (class values; the "
                "ignore value for unlabelled pixels).",
            ),
            (
                "LABEL_POLYGONS",
                "Labelled polygons instead of label rasters: any polygon "
                "layer (a scratch layer, a filtered layer, selected features only).",
            ),
            ("CLASS_FIELD", "Field of the label polygons holding the class (integer or text)."),
            (
                "TILE_FOLDER",
                "Instead of images: a folder with train/, val/ (and test/) "
                "subfolders of image and label tiles.",
            ),
        ):
            self.parameterDefinition(key).setHelp(self.tr(text))
        ignore = QgsProcessingParameterNumber(
            "IGNORE_VALUE", self.tr("Ignore value"), type=DOUBLE, optional=True
        )
        ignore.setHelp(self.tr("Label value of unlabelled pixels (e.g. 0)."))
        self.addParameter(ignore)
        self.add_class_table("CLASSES", "Class table")
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
        for key, label, kind, default, low, high, text in (
            ("BATCH_SIZE", "Batch size", INTEGER, d["batch_size"], 1, 1024, "Tiles per step."),
            (
                "LEARNING_RATE",
                "Learning rate",
                DOUBLE,
                d["learning_rate"],
                0.0,
                1.0,
                "AdamW learning rate, with a cosine schedule.",
            ),
            (
                "PATIENCE",
                "Early stopping patience",
                INTEGER,
                d["patience"],
                0,
                10000,
                "Stop after this many epochs without a better validation mIoU (0: off).",
            ),
            (
                "TILE_SIZE",
                "Tile size (pixels)",
                INTEGER,
                d["tile_size"],
                32,
                2048,
                "Side of the training tiles, a multiple of 32.",
            ),
            (
                "VALIDATION_FRACTION",
                "Validation share",
                DOUBLE,
                d["validation_fraction"],
                0.0,
                0.9,
                "Share of labelled blocks held out for validation.",
            ),
            ("SEED", "Random seed", INTEGER, d["seed"], 0, None, "Same seed, same model."),
        ):
            parameter = QgsProcessingParameterNumber(
                key, self.tr(label), type=kind, defaultValue=default, minValue=low
            )
            if high is not None:
                parameter.setMaximum(high)
            parameter.setHelp(self.tr(text))
            self.add_advanced(parameter)
        self.add_advanced(
            QgsProcessingParameterRasterLayer(
                "VALIDATION_INPUT", self.tr("Validation image"), optional=True
            )
        )
        self.add_advanced(
            QgsProcessingParameterRasterLayer(
                "VALIDATION_LABELS", self.tr("Validation labels"), optional=True
            )
        )
        self.add_advanced(
            QgsProcessingParameterFile(
                "ENCODER_WEIGHTS", self.tr("Pretrained encoder weights"), optional=True
            )
        )
        self.parameterDefinition("ENCODER_WEIGHTS").setHelp(
            self.tr("A local .safetensors or .pth state_dict of the encoder (no download).")
        )
        for key, label, default, text in (
            ("CLASS_WEIGHTING", "Weight rare classes up", True, "Inverse-frequency weights."),
            ("AUGMENT", "Augment", True, "Random flips, rotations and brightness jitter."),
            (
                "NODATA_ZERO",
                "All-zero pixels are nodata",
                False,
                "Treat pixels that are 0 in every band as nodata.",
            ),
        ):
            parameter = QgsProcessingParameterBoolean(key, self.tr(label), defaultValue=default)
            parameter.setHelp(self.tr(text))
            self.add_advanced(parameter)
        self._add_generalisation(d)
        self.add_device()
        # Optional (a temporary file when left out), so a model that shows it as an
        # output does not make qgis_process ask for it.
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_MODEL",
                self.tr("Model file"),
                self.tr("LandSeg model (*.safetensors)"),
                optional=True,
                createByDefault=True,
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

    def _add_generalisation(self, d: dict[str, Any]) -> None:
        """Advanced options for new dates and places, each with help on when to use it."""
        normalization = QgsProcessingParameterEnum(
            "NORMALIZATION",
            self.tr("Band normalisation"),
            options=[self.tr(UNET_NORMALIZATION_LABELS[m]) for m in UNET_NORMALIZATIONS],
            defaultValue=UNET_NORMALIZATIONS.index(d["normalization"]),
        )
        normalization.setHelp(self.tr(UNET_HELP["normalization"]))
        self.add_advanced(normalization)
        for key, label in (
            ("HARMONIZE", "Remove the Sentinel-2 +1000 offset"),
            ("ACQUISITION_AUGMENT", "Augment for other dates"),
        ):
            flag = QgsProcessingParameterBoolean(key, self.tr(label), defaultValue=d[key.lower()])
            flag.setHelp(self.tr(UNET_HELP[key.lower()]))
            self.add_advanced(flag)
        holdout = QgsProcessingParameterNumber(
            "HOLDOUT_IMAGE",
            self.tr("Held-out validation image"),
            type=INTEGER,
            defaultValue=d["holdout_image"],
            minValue=0,
        )
        holdout.setHelp(self.tr(UNET_HELP["holdout_image"]))
        self.add_advanced(holdout)
        averaging = QgsProcessingParameterEnum(
            "WEIGHT_AVERAGING",
            self.tr("Weight averaging"),
            options=[self.tr(WEIGHT_AVERAGING_LABELS[m]) for m in WEIGHT_AVERAGING_MODES],
            defaultValue=WEIGHT_AVERAGING_MODES.index(d["weight_averaging"]),
        )
        averaging.setHelp(self.tr(UNET_HELP["weight_averaging"]))
        self.add_advanced(averaging)

    def _generalisation_args(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> list[str]:
        mode = UNET_NORMALIZATIONS[self.parameterAsEnum(parameters, "NORMALIZATION", context)]
        args = ["--normalization", mode]
        for key, option in (
            ("HARMONIZE", "harmonize"),
            ("ACQUISITION_AUGMENT", "acquisition-augment"),
        ):
            on = self.parameterAsBoolean(parameters, key, context)
            args.append(f"--{option}" if on else f"--no-{option}")
        holdout = self.parameterAsInt(parameters, "HOLDOUT_IMAGE", context)
        averaging = self.parameterAsEnum(parameters, "WEIGHT_AVERAGING", context)
        return [
            *args,
            "--holdout-image",
            str(holdout),
            "--weight-averaging",
            WEIGHT_AVERAGING_MODES[averaging],
        ]

    def check(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str | None]:
        """One kind of training data, labels matching the images, class table, files."""
        inputs = self.parameterAsLayerList(parameters, "INPUTS", context)
        labels = self.parameterAsLayerList(parameters, "LABELS", context)
        polygons = _given(parameters, "LABEL_POLYGONS")
        folder = bool(self.parameterAsFile(parameters, "TILE_FOLDER", context))
        errors: list[str | None] = [*super().check(parameters, context)]
        if folder and (inputs or labels or polygons):
            errors.append(
                "Give a TILE_FOLDER or images (INPUTS with LABELS or LABEL_POLYGONS), not "
                "both: leave the tile folder empty or the images and labels."
            )
        elif not folder and not inputs:
            errors.append(
                "No training data: give images (INPUTS) with label rasters (LABELS) or label "
                "polygons (LABEL_POLYGONS), or a TILE_FOLDER."
            )
        elif not folder and labels and polygons:
            errors.append(
                "Give label rasters (LABELS) or label polygons (LABEL_POLYGONS), not both."
            )
        elif not folder and not labels and not polygons:
            errors.append(
                "The images need labels: label rasters (LABELS, one per image) or label "
                "polygons (LABEL_POLYGONS with CLASS_FIELD)."
            )
        elif labels and len(labels) != len(inputs):
            errors.append(
                f"{len(inputs)} images but {len(labels)} label rasters: give one label raster "
                "per image, in the same order."
            )
        if polygons and not self.parameterAsString(parameters, "CLASS_FIELD", context):
            errors.append("Label polygons need CLASS_FIELD, the field holding each class.")
        counts = {layer.bandCount() for layer in inputs if layer is not None}
        if len(counts) > 1:
            errors.append(
                f"The images have different band counts ({sorted(counts)}): a U-Net takes "
                "images with the same bands."
            )
        if _given(parameters, "VALIDATION_INPUT") != _given(parameters, "VALIDATION_LABELS"):
            errors.append("Give both VALIDATION_INPUT and VALIDATION_LABELS, or neither.")
        errors += [
            class_table_error("CLASSES", self.classes_text(parameters, "CLASSES", context)),
            extension_error("OUTPUT_MODEL", parameters.get("OUTPUT_MODEL"), ("safetensors",)),
            extension_error("OUTPUT_REPORT", parameters.get("OUTPUT_REPORT"), ("html", "htm")),
        ]
        return errors

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
        polygons = vector_source(self, parameters, "LABEL_POLYGONS", context, feedback)
        folder = self.parameterAsFile(parameters, "TILE_FOLDER", context)
        if folder:
            args += ["--tile-folder", absolute(folder)]
        elif not inputs:
            raise QgsProcessingException("Give images (INPUTS) with labels, or a TILE_FOLDER.")
        for path in inputs:
            args += ["--input", path]
        if polygons is not None:
            field = self.parameterAsString(parameters, "CLASS_FIELD", context)
            if not field:
                raise QgsProcessingException("Label polygons need CLASS_FIELD.")
            args += ["--label-polygons", polygons, "--class-field", field]
        for path in labels:
            args += ["--labels", path]
        if not folder and polygons is None and not labels:
            raise QgsProcessingException(
                "Give label rasters (LABELS) or label polygons (LABEL_POLYGONS with CLASS_FIELD)."
            )
        if _given(parameters, "IGNORE_VALUE"):
            ignore = self.parameterAsDouble(parameters, "IGNORE_VALUE", context)
            args += ["--ignore-value", _number_text(ignore)]
        classes = self.classes_text(parameters, "CLASSES", context)
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
        args += self._generalisation_args(parameters, context)
        args += self.device_args(parameters, context)
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
    short_description = "Classify rasters with a model from Train U-Net (or DFC/ISB/W-Net)."
    keywords = (*UNET_TAGS, "predict", "inference", "batch")

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        """Declare the raster (or a batch of rasters), the model file and the outputs."""
        self.addParameter(
            QgsProcessingParameterRasterLayer("INPUT", self.tr("Input raster"), optional=True)
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "MODEL",
                self.tr("Model file"),
                # a filter, not extension=: a model Train U-Net wrote under another name
                # (its OUTPUT_MODEL is free) must still be accepted
                fileFilter="LandSeg model (*.safetensors);;All files (*)",
            )
        )
        self.add_extent()
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "INPUTS", self.tr("Batch: input rasters"), layerType=RASTERS, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "INPUT_FOLDER", self.tr("Batch: input folder"), behavior=FOLDER, optional=True
            )
        )
        for key, text in (
            ("INPUT", "The raster to classify; or leave it empty and give a batch below."),
            ("MODEL", "A .safetensors model file from Train U-Net, DFC, ISB or W-Net."),
            ("INPUTS", "Instead of INPUT: several rasters, one class raster each."),
            (
                "INPUT_FOLDER",
                "Instead of INPUT: every raster (.tif, .vrt, .jp2, .img) of a folder.",
            ),
        ):
            self.parameterDefinition(key).setHelp(self.tr(text))
        self.add_advanced(
            QgsProcessingParameterNumber(
                "BATCH_SIZE",
                self.tr("Tiles per batch"),
                type=INTEGER,
                defaultValue=PREDICT_BATCH_SIZE,
                minValue=1,
            )
        )
        tta = QgsProcessingParameterBoolean(
            "TTA",
            self.tr("Test-time augmentation"),
            defaultValue=PREDICT_DEFAULTS["tta"],
        )
        tta.setHelp(self.tr(UNET_HELP["tta"]))
        self.add_advanced(tta)
        self.add_device()
        self.add_dask_scheduler()
        self.addParameter(  # optional for a batch; a temporary file by default
            QgsProcessingParameterRasterDestination(
                "OUTPUT", self.tr("Classes"), optional=True, createByDefault=True
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "OUTPUT_CONFIDENCE",
                self.tr("Confidence"),
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
                self.tr("Batch: output folder"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            VrtDestination(
                "OUTPUT_MOSAIC",
                self.tr("Batch: mosaic (VRT)"),
                optional=True,
                createByDefault=False,
            )
        )
        for key, text in (
            ("OUTPUT_CONFIDENCE", "Probability of the chosen class, per pixel."),
            ("OUTPUT_FOLDER", "Batch: one class raster <input name>.tif per input."),
            ("OUTPUT_MOSAIC", "Batch: a GDAL VRT mosaic of the class rasters (no copy)."),
        ):
            self.parameterDefinition(key).setHelp(self.tr(text))

    def check(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str | None]:
        """One input kind, batch-only and single-only outputs, output files."""
        single = _given(parameters, "INPUT")
        batch = [key for key in ("INPUTS", "INPUT_FOLDER") if _given(parameters, key)]
        errors: list[str | None] = [*super().check(parameters, context)]
        if single + len(batch) > 1:
            errors.append(
                "Give one raster (INPUT), input rasters (INPUTS) or a folder of rasters "
                "(INPUT_FOLDER): only one of them."
            )
        elif not single and not batch:
            errors.append(
                "No input: give a raster (INPUT), or for a batch input rasters (INPUTS) or "
                "a folder of rasters (INPUT_FOLDER)."
            )
        elif batch:
            for key in ("OUTPUT_CONFIDENCE", "OUTPUT_POLYGONS"):
                if parameters.get(key) is not None:
                    errors.append(
                        f"{key} is written for one raster (INPUT) only; leave it out for a "
                        "batch, or vectorize the class rasters with landseg:vectorize."
                    )
            if _given(parameters, "EXTENT"):
                errors.append("EXTENT applies to one raster (INPUT); leave it empty for a batch.")
        elif parameters.get("OUTPUT_MOSAIC") is not None:
            errors.append(
                "OUTPUT_MOSAIC is for a batch (INPUTS or INPUT_FOLDER); leave it out for one "
                "raster."
            )
        mosaic = destination_path(parameters.get("OUTPUT_MOSAIC"))
        if mosaic and not mosaic.lower().endswith(".vrt"):
            errors.append(
                f"OUTPUT_MOSAIC {mosaic}: the mosaic is a GDAL VRT (it refers to the class "
                "rasters, no pixel is copied); give a .vrt file name."
            )
        errors += [
            extension_error(key, parameters.get(key), ("tif", "tiff"))
            for key in ("OUTPUT", "OUTPUT_CONFIDENCE")
        ]
        return errors

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
            "--tta" if self.parameterAsBoolean(parameters, "TTA", context) else "--no-tta",
            *self.device_args(parameters, context),
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
        source = clip_to_extent(
            self, parameters, layer, raster_source(layer, "INPUT"), context, feedback
        )
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
        attach_styler(context, output, LayerStyler("U-Net classes", classes=classes))
        outputs: dict[str, Any] = {"OUTPUT": output}
        if confidence:
            attach_styler(context, confidence, LayerStyler("U-Net confidence"))
            outputs["OUTPUT_CONFIDENCE"] = confidence
        if polygons_tmp:
            outputs["OUTPUT_POLYGONS"] = copy_polygons(
                self, polygons_tmp, parameters, "OUTPUT_POLYGONS", context, feedback
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
        feedback.pushInfo(f"{len(result.get('OUTPUTS') or [])} class rasters in {out_folder}")
        outputs: dict[str, Any] = {"OUTPUT_FOLDER": out_folder}
        if mosaic:
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
