"""Build the example models in ``resources/models`` with QGIS's modeler API.

The ``.model3`` files are generated, not hand-written, so that they always match the
algorithms' parameters. Run with QGIS's Python (``make models``); the provider loads
every ``resources/models/*.model3`` into the toolbox group "Example models".
A model is built only when all of its algorithms exist.

The files are the same on every QGIS version (:func:`write_model`): since QGIS 3.26 a new
model names its outputs after their descriptions (``polygons`` instead of
``vectorize:Polygons``), which would rename the outputs users and the README call them by.
A model file without an ``internal_version`` keeps the ``child:output`` names on every
version, as models saved by QGIS before 3.26 do.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUP = "Example models"


def _register_plugin() -> None:
    spec = importlib.util.spec_from_file_location(
        "landseg", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["landseg"] = module
    spec.loader.exec_module(module)


def portable(model):  # noqa: ANN001, ANN201
    """Return ``model`` with its outputs named ``child_id:output`` on every QGIS version.

    QGIS 3.26+ gives models it creates the internal version 2 (outputs named after their
    descriptions); a model loaded without ``internal_version`` has version 1, the naming
    of QGIS 3.22. The model is reloaded from its own definition without that key.
    """
    variant = model.toVariant()
    if variant.pop("internal_version", None) is not None:
        model.loadVariant(variant)
    return model


def write_model(model, path: Path) -> bool:  # noqa: ANN001
    """Write a ``.model3`` file that is the same whichever QGIS version writes it.

    As :meth:`QgsProcessingModelAlgorithm.toFile`, without what newer versions add: the
    ``internal_version`` (see :func:`portable`), empty output group and order, and the
    step links of output parameters (rebuilt on loading anyway).
    """
    from qgis.core import QgsXmlUtils
    from qgis.PyQt.QtXml import QDomDocument

    variant = portable(model).toVariant()
    variant.pop("internal_version", None)
    # Written by newer versions only, and empty unless set in the modeler.
    for key in ("outputGroup", "outputOrder"):
        if not variant.get(key):
            variant.pop(key, None)
    # Output parameters are rebuilt from the steps when a model loads; newer versions
    # also write the links back to their step, which no version reads.
    for definition in variant.get("parameterDefinitions", {}).values():
        metadata = definition.get("metadata")
        if isinstance(metadata, dict):
            for key in [k for k in metadata if k.startswith("_modelChild")]:
                del metadata[key]
    doc = QDomDocument("model")
    doc.appendChild(QgsXmlUtils.writeVariant(variant, doc))
    try:
        Path(path).write_text(doc.toString(2), encoding="utf-8")
    except OSError:
        return False
    return True


def _param(model, definition) -> None:  # noqa: ANN001
    from qgis.core import QgsProcessingModelParameter

    model.addModelParameter(definition, QgsProcessingModelParameter(definition.name()))


def _child(algorithm: str, child_id: str, sources: dict, outputs: dict[str, str] | None = None):  # noqa: ANN202
    """Build a child algorithm step.

    ``sources`` maps parameters to ``('model', name)``, ``('child', id, output)`` or
    ``('value', value)``; ``outputs`` maps child outputs to model output names.
    """
    from qgis.core import (
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
    )

    child = QgsProcessingModelChildAlgorithm(algorithm)
    child.setChildId(child_id)
    child.setDescription(child_id.replace("_", " ").capitalize())
    for name, source in sources.items():
        if source[0] == "model":
            value = QgsProcessingModelChildParameterSource.fromModelParameter(source[1])
        elif source[0] == "child":
            value = QgsProcessingModelChildParameterSource.fromChildOutput(source[1], source[2])
        else:
            value = QgsProcessingModelChildParameterSource.fromStaticValue(source[1])
        child.addParameterSources(name, [value])
    model_outputs = {}
    for output, model_name in (outputs or {}).items():
        out = QgsProcessingModelOutput(model_name, model_name)
        out.setChildId(child_id)
        out.setChildOutputName(output)
        # Optional, a temporary file unless given: qgis_process then needs only the outputs
        # the user wants (a model output is mandatory otherwise).
        out.setMandatory(False)
        out.setDefaultValue("TEMPORARY_OUTPUT")
        model_outputs[model_name] = out
    child.setModelOutputs(model_outputs)
    return child


def slic_polygons():  # noqa: ANN201
    """SLIC superpixels, then polygons of them (object-based image analysis start)."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )

    model = QgsProcessingModelAlgorithm("SLIC superpixels to polygons", GROUP)
    model.setHelpContent(
        {
            "ALG_DESC": "Segments an image into SLIC superpixels with landseg:slic and turns "
            "them into polygons with landseg:vectorize (value = segment id, pixel count, area). "
            "Open it in the modeler to add your own steps.",
            "ALG_CREATOR": "LandSeg",
        }
    )
    _param(model, QgsProcessingParameterRasterLayer("image", "Image"))
    from landseg.qgis_plugin.algorithms.base import INTEGER

    _param(
        model,
        QgsProcessingParameterNumber("segments", "Approximate number of segments", INTEGER, 1000),
    )
    model.addChildAlgorithm(
        _child(
            "landseg:slic",
            "slic",
            {"INPUT": ("model", "image"), "N_SEGMENTS": ("model", "segments")},
            {"OUTPUT": "Segments"},
        )
    )
    model.addChildAlgorithm(
        _child(
            "landseg:vectorize",
            "vectorize",
            {"INPUT": ("child", "slic", "OUTPUT")},
            {"OUTPUT": "Polygons"},
        )
    )
    return model


def unet_workflow():  # noqa: ANN201
    """Train a U-Net on labelled pixels, classify the image, assess it and vectorize it."""
    from landseg.qgis_plugin.algorithms.base import INTEGER, RASTERS
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingParameterMultipleLayers,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )

    model = QgsProcessingModelAlgorithm("U-Net land cover workflow", GROUP)
    model.setHelpContent(
        {
            "ALG_DESC": "Trains a U-Net (landseg:trainunet) on images with partial labels, "
            "classifies the first image with it (landseg:predictunet), scores the map "
            "against a reference raster (landseg:accuracy) and turns it into polygons "
            "(landseg:vectorize). Like every model, it runs on QGIS's main thread: the "
            "desktop does not respond while the U-Net trains (minutes). To keep QGIS "
            "responsive, run Train U-Net from the toolbox, or this model with qgis_process.",
            "ALG_CREATOR": "LandSeg",
        }
    )
    _param(model, QgsProcessingParameterMultipleLayers("images", "Training images", RASTERS))
    _param(
        model,
        QgsProcessingParameterMultipleLayers(
            "labels", "Label rasters (same order as the images)", RASTERS
        ),
    )
    _param(
        model,
        QgsProcessingParameterNumber("ignore", "Unlabelled value in the labels", INTEGER, 0),
    )
    _param(
        model,
        QgsProcessingParameterNumber("epochs", "Most training epochs", INTEGER, 40, minValue=1),
    )
    _param(model, QgsProcessingParameterRasterLayer("image", "Image to classify"))
    _param(model, QgsProcessingParameterRasterLayer("reference", "Reference map"))
    model.addChildAlgorithm(
        _child(
            "landseg:trainunet",
            "train",
            {
                "INPUTS": ("model", "images"),
                "LABELS": ("model", "labels"),
                "IGNORE_VALUE": ("model", "ignore"),
                "EPOCHS": ("model", "epochs"),
            },
            {"OUTPUT_MODEL": "Model", "OUTPUT_REPORT": "Training report"},
        )
    )
    model.addChildAlgorithm(
        _child(
            "landseg:predictunet",
            "predict",
            {"INPUT": ("model", "image"), "MODEL": ("child", "train", "OUTPUT_MODEL")},
            {"OUTPUT": "Land cover"},
        )
    )
    model.addChildAlgorithm(
        _child(
            "landseg:accuracy",
            "accuracy",
            {
                "PREDICTION": ("child", "predict", "OUTPUT"),
                "REFERENCE": ("model", "reference"),
                "IGNORE_VALUE": ("model", "ignore"),
            },
            {"OUTPUT_HTML": "Accuracy report"},
        )
    )
    model.addChildAlgorithm(
        _child(
            "landseg:vectorize",
            "vectorize",
            {"INPUT": ("child", "predict", "OUTPUT")},
            {"OUTPUT": "Land cover polygons"},
        )
    )
    return model


def dfc_accuracy():  # noqa: ANN201
    """DFC clusters of an image, scored against a reference map in cluster mode."""
    from landseg.qgis_plugin.algorithms.base import INTEGER
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )

    model = QgsProcessingModelAlgorithm("DFC clusters and their accuracy", GROUP)
    model.setHelpContent(
        {
            "ALG_DESC": "Segments an image without labels with DFC (landseg:dfc, differentiable "
            "feature clustering), then maps its clusters to the classes of a reference map "
            "one-to-one (Hungarian) and reports the accuracy, kappa and adjusted Rand index "
            "(landseg:accuracy in cluster mode).",
            "ALG_CREATOR": "LandSeg",
        }
    )
    _param(model, QgsProcessingParameterRasterLayer("image", "Image"))
    _param(model, QgsProcessingParameterRasterLayer("reference", "Reference map"))
    _param(
        model,
        QgsProcessingParameterNumber(
            "iterations", "Training iterations (at most)", INTEGER, 100, minValue=1
        ),
    )
    model.addChildAlgorithm(
        _child(
            "landseg:dfc",
            "dfc",
            {"INPUT": ("model", "image"), "MAX_ITER": ("model", "iterations")},
            {"OUTPUT": "Clusters"},
        )
    )
    model.addChildAlgorithm(
        _child(
            "landseg:accuracy",
            "accuracy",
            {
                "PREDICTION": ("child", "dfc", "OUTPUT"),
                "REFERENCE": ("model", "reference"),
                "MODE": ("value", 1),  # clusters
                "ASSIGNMENT": ("value", 0),  # one-to-one (Hungarian)
            },
            {"OUTPUT_HTML": "Accuracy report"},
        )
    )
    return model


#: Model file stem -> (builder, algorithms it needs).
MODELS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "slic_polygons": (slic_polygons, ("landseg:slic", "landseg:vectorize")),
    "unet_workflow": (
        unet_workflow,
        ("landseg:trainunet", "landseg:predictunet", "landseg:accuracy", "landseg:vectorize"),
    ),
    "dfc_accuracy": (dfc_accuracy, ("landseg:dfc", "landseg:accuracy")),
}


def main() -> int:
    """Build every model whose algorithms exist."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "models")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, "/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    _register_plugin()
    from landseg.qgis_plugin.plugin import LandSegPlugin

    plugin = LandSegPlugin(None)
    plugin.initProcessing()
    registry = QgsApplication.processingRegistry()
    args.out.mkdir(parents=True, exist_ok=True)
    for stem, (build, needs) in MODELS.items():
        missing = [a for a in needs if registry.algorithmById(a) is None]
        if missing:
            print(f"skip {stem}: {', '.join(missing)} not available")
            continue
        model = build()
        path = args.out / f"{stem}.model3"
        if not write_model(model, path):
            print(f"cannot write {path}", file=sys.stderr)
            return 1
        print(f"wrote {path} (id landseg:{model.name()})")
    plugin.unload()
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
