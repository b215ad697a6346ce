"""LandSeg demo: segment the North Carolina Landsat 7 scene with every algorithm.

Runs each algorithm through ``qgis_process.bin`` exactly as a headless user would, then
builds a QGIS project (``landseg-demo.qgz``) with the styled results and renders a preview
picture of it. Run with QGIS's Python after ``make deploy`` (``make demo`` does all of it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (algorithm, output stem, parameters) run on the scene, in order.
RUNS = [
    ("landseg:slic", "nc_slic", {"N_SEGMENTS": 1500, "COMPACTNESS": 1}),
    ("landseg:quickshift", "nc_quickshift", {"KERNEL_SIZE": 5, "MAX_DIST": 10, "RATIO": 0.5}),
    ("landseg:felzenszwalb", "nc_felzenszwalb", {"SCALE": 150, "SIGMA": 0.5, "MIN_SIZE": 30}),
]


CLASSES = (
    "1:developed:#d7191c,2:agriculture:#fdae61,3:herbaceous:#ffffbf,"
    "4:shrubland:#a6d96a,5:forest:#1a9641,6:water:#2b83ba,7:sediment:#bababa"
)


def qgis_process(*args: str) -> dict:
    """Run qgis_process.bin with --json and return its parsed answer."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        ["qgis_process.bin", "--json", *args], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"qgis_process {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout)


def run_algorithms(scene: Path, out: Path) -> dict[str, dict]:
    """Run every algorithm on the scene; return their results by output stem."""
    results = {}
    for algorithm, stem, params in RUNS:
        args = [f"INPUT={scene}", f"OUTPUT={out / (stem + '.tif')}"]
        args += [f"{key}={value}" for key, value in params.items()]
        if algorithm == "landseg:slic":
            args += [
                f"OUTPUT_POLYGONS={out / (stem + '_polygons.gpkg')}",
                f"OUTPUT_MEAN={out / (stem + '_mean.tif')}",
            ]
        started = time.perf_counter()
        answer = qgis_process("run", algorithm, "--", *args)
        seconds = time.perf_counter() - started
        results[stem] = {
            "algorithm": algorithm,
            "parameters": params,
            "seconds": round(seconds, 1),
            **answer["results"],
        }
        print(
            f"{algorithm:22s} {answer['results']['N_SEGMENTS']:6d} segments  "
            f"{seconds:5.1f} s (qgis_process, start-up included)"
        )
    return results


def assess(out: Path, reference: Path, results: dict[str, dict]) -> None:
    """Accuracy report of each segmentation against the NC reference map (cluster mode)."""
    for stem, result in results.items():
        if "N_SEGMENTS" not in result:
            continue
        answer = qgis_process(
            "run",
            "landseg:accuracy",
            "--",
            f"PREDICTION={result['OUTPUT']}",
            f"REFERENCE={reference}",
            "MODE=1",
            "ASSIGNMENT=1",
            f"CLASSES={CLASSES}",
            f"OUTPUT_HTML={out / ('accuracy_' + stem + '.html')}",
            f"OUTPUT_JSON={out / ('accuracy_' + stem + '.json')}",
            f"OUTPUT_ERRORS={out / ('accuracy_' + stem + '_errors.tif')}",
        )["results"]
        result["accuracy"] = {
            key: answer[key] for key in ("OVERALL_ACCURACY", "KAPPA", "MEAN_IOU", "MACRO_F1", "ARI")
        }
        result["accuracy"]["report"] = answer["OUTPUT_HTML"]
        result["accuracy"]["errors"] = answer["OUTPUT_ERRORS"]
        print(
            f"{stem:16s} clusters mapped to the 1996 land-cover classes (majority): OA "
            f"{answer['OVERALL_ACCURACY']:.3f}, kappa {answer['KAPPA']:.3f}, "
            f"ARI {answer['ARI']:.3f}"
        )


def classify(scene: Path, data: Path, out: Path, results: dict[str, dict]) -> None:
    """Train a U-Net on the 2,872 sparse labelled pixels, classify the scene, assess it."""
    started = time.perf_counter()
    model = out / "nc_unet.safetensors"
    train = qgis_process(
        "run",
        "landseg:trainunet",
        "--",
        f"INPUTS={scene}",
        f"LABELS={data / 'landsat96_labelled_pixels.tif'}",
        "IGNORE_VALUE=0",
        f"CLASSES={CLASSES}",
        "SEED=42",
        f"OUTPUT_MODEL={model}",
        f"OUTPUT_REPORT={out / 'nc_unet_training.html'}",
    )["results"]
    predict = qgis_process(
        "run",
        "landseg:predictunet",
        "--",
        f"INPUT={scene}",
        f"MODEL={model}",
        f"OUTPUT={out / 'nc_unet.tif'}",
        f"OUTPUT_POLYGONS={out / 'nc_unet_polygons.gpkg'}",
    )["results"]
    answer = qgis_process(
        "run",
        "landseg:accuracy",
        "--",
        f"PREDICTION={predict['OUTPUT']}",
        f"REFERENCE={data / 'strata.tif'}",
        "IGNORE_VALUE=0",
        f"CLASSES={CLASSES}",
        f"OUTPUT_HTML={out / 'accuracy_nc_unet.html'}",
        f"OUTPUT_JSON={out / 'accuracy_nc_unet.json'}",
    )["results"]
    results["nc_unet"] = {
        "algorithm": "landseg:trainunet + landseg:predictunet",
        "seconds": round(time.perf_counter() - started, 1),
        **predict,
        "training": {k: v for k, v in train.items() if not isinstance(v, dict)},
        "accuracy": {
            **{k: answer[k] for k in ("OVERALL_ACCURACY", "KAPPA", "MEAN_IOU", "MACRO_F1")},
            "report": answer["OUTPUT_HTML"],
        },
    }
    print(
        f"U-Net (sparse labels) land cover against the 1996 map: OA "
        f"{answer['OVERALL_ACCURACY']:.3f}, kappa {answer['KAPPA']:.3f} "
        f"({results['nc_unet']['seconds']:.0f} s with training)"
    )


def cluster_dfc(scene: Path, data: Path, out: Path, results: dict[str, dict]) -> None:
    """DFC (unsupervised deep clustering) on the scene, clusters mapped to the 1996 classes."""
    started = time.perf_counter()
    answer = qgis_process(
        "run",
        "landseg:dfc",
        "--",
        f"INPUT={scene}",
        "MAX_ITER=60",
        "SEED=42",
        f"REFERENCE={data / 'strata.tif'}",
        "ASSIGNMENT=1",  # many-to-one: every cluster gets the class most of its pixels have
        f"REFERENCE_CLASSES={CLASSES}",
        f"OUTPUT={out / 'nc_dfc.tif'}",
        f"OUTPUT_MAPPED={out / 'nc_dfc_classes.tif'}",
        f"OUTPUT_MAPPING={out / 'nc_dfc_mapping.csv'}",
    )["results"]
    results["nc_dfc"] = {
        "algorithm": "landseg:dfc",
        "seconds": round(time.perf_counter() - started, 1),
        **answer,
    }
    print(
        f"DFC: {answer['N_CLUSTERS']} clusters in {results['nc_dfc']['seconds']:.0f} s; against "
        f"the 1996 map ARI {answer['ARI']:.3f}, OA {answer['OVERALL_ACCURACY']:.3f} (majority)"
    )
    # The reference line: k-means with the same number of clusters on the same bands.
    engine = os.environ.get(
        "LANDSEG_ENGINE_PYTHON",
        str(Path.home() / ".local/share/landseg/engine-venv/bin/python"),
    )
    kmeans = subprocess.run(
        [engine, str(ROOT / "bench" / "unsupervised.py"), "--kmeans", str(scene),
         str(data / "strata.tif"), str(answer["N_CLUSTERS"])],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    results["nc_kmeans"] = json.loads(kmeans.stdout.strip().splitlines()[-1])
    print(
        f"k-means with the same K ({answer['N_CLUSTERS']}): ARI "
        f"{results['nc_kmeans']['ARI']:.3f} (DFC {answer['ARI']:.3f})"
    )


def _import_plugin() -> None:
    spec = importlib.util.spec_from_file_location(
        "landseg", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["landseg"] = module
    spec.loader.exec_module(module)


def add_panel_drawings(project: object, scene: object, data: Path) -> None:
    """Give the LandSeg panel the NC classes and example strokes.

    The class table goes into the project; the 34 NC training polygons become the panel's
    training polygons, and a stroke across each (its bounding-box diagonal inside it)
    becomes a scribble, both in ``landseg-demo_landseg.gpkg`` beside the project.
    """
    from landseg.qgis_plugin.panel.classes import ClassInfo, write_project_classes
    from landseg.qgis_plugin.panel.layers import drawing_layer
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer

    classes = [
        ClassInfo(int(value), name, colour)
        for value, name, colour in (part.split(":") for part in CLASSES.split(","))
    ]
    write_project_classes(classes, project)
    values = {c.name: c.value for c in classes}
    source = QgsVectorLayer(str(data / "landsat96_polygons.shp"), "nc", "ogr")
    polygons = drawing_layer("polygons", scene.crs(), classes, project)
    scribbles = drawing_layer("scribbles", scene.crs(), classes, project)
    shapes, strokes = [], []
    for feature in source.getFeatures():
        value = values[str(feature["label"])]
        geometry = QgsGeometry(feature.geometry())
        shape = QgsFeature(polygons.fields())
        shape.setGeometry(geometry)
        shape.setAttribute("class", value)
        shapes.append(shape)
        box = geometry.boundingBox()
        diagonal = QgsGeometry.fromPolylineXY(
            [
                QgsPointXY(box.xMinimum(), box.yMinimum()),
                QgsPointXY(box.xMaximum(), box.yMaximum()),
            ]
        )
        inside = diagonal.intersection(geometry.buffer(-30, 4))
        if inside.isEmpty():
            continue
        for part in inside.asGeometryCollection():
            if part.length() > 0:
                stroke = QgsFeature(scribbles.fields())
                stroke.setGeometry(part)
                stroke.setAttribute("class", value)
                strokes.append(stroke)
    polygons.dataProvider().addFeatures(shapes)
    scribbles.dataProvider().addFeatures(strokes)
    for layer in (polygons, scribbles):
        layer.updateExtents()
    project.layerTreeRoot().findLayer(polygons.id()).setItemVisibilityChecked(False)
    print(
        f"Panel: {len(classes)} classes, {len(shapes)} training polygons, {len(strokes)} scribbles"
    )


def build_project(scene: Path, out: Path, results: dict[str, dict], data: Path) -> Path:
    """Write landseg-demo.qgz with the scene and the styled results; render preview.png."""
    from qgis.core import (
        QgsApplication,
        QgsContrastEnhancement,
        QgsCoordinateReferenceSystem,
        QgsLayerMetadata,
        QgsMapRendererParallelJob,
        QgsMapSettings,
        QgsMultiBandColorRenderer,
        QgsProject,
        QgsRasterLayer,
        QgsRasterMinMaxOrigin,
        QgsReferencedRectangle,
        QgsVectorLayer,
    )
    from qgis.PyQt.QtCore import QSize, Qt
    from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

    # Scoped enums (Qt6, QGIS 4) that QGIS 3.22's Qt5 also has.
    stretch = QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum
    try:
        from qgis.core import Qgis

        cumulative_cut = Qgis.RasterRangeLimit.CumulativeCut
    except AttributeError:
        cumulative_cut = QgsRasterMinMaxOrigin.Limits.CumulativeCut

    app = QgsApplication([], False)
    app.initQgis()
    _import_plugin()
    from landseg.qgis_plugin.styling import style_outlines, style_polygon_classes

    project = QgsProject.instance()
    project.setTitle("LandSeg demo: North Carolina Landsat 7 (2000)")
    rgb = QgsRasterLayer(str(scene), "Landsat 7 natural colour (bands 3, 2, 1)")
    renderer = QgsMultiBandColorRenderer(rgb.dataProvider(), 3, 2, 1)
    rgb.setRenderer(renderer)
    rgb.setContrastEnhancement(stretch, cumulative_cut)
    names = {
        "nc_slic": "SLIC segments",
        "nc_quickshift": "QuickShift segments",
        "nc_felzenszwalb": "Felzenszwalb segments",
    }
    layers = {}
    for stem, name in names.items():
        layer = QgsRasterLayer(results[stem]["OUTPUT"], name)  # its .qml sidecar styles it
        layer.setOpacity(0.85)
        if "accuracy" in results[stem]:
            metadata = QgsLayerMetadata()
            link = QgsLayerMetadata.Link(
                "Accuracy report", "WWW:LINK", Path(results[stem]["accuracy"]["report"]).name
            )
            metadata.addLink(link)
            metadata.setAbstract(
                "Accuracy against the 1996 land-cover map (clusters mapped by majority): "
                + ", ".join(
                    f"{k} {v:.3f}"
                    for k, v in results[stem]["accuracy"].items()
                    if isinstance(v, float)
                )
            )
            layer.setMetadata(metadata)
        layers[stem] = layer
    polygons = QgsVectorLayer(results["nc_slic"]["OUTPUT_POLYGONS"], "SLIC segment outlines", "ogr")
    style_outlines(polygons)
    mean = QgsRasterLayer(results["nc_slic"]["OUTPUT_MEAN"], "SLIC segment means")
    mean.setRenderer(QgsMultiBandColorRenderer(mean.dataProvider(), 3, 2, 1))
    mean.setContrastEnhancement(stretch, cumulative_cut)
    errors = QgsRasterLayer(
        results["nc_slic"]["accuracy"]["errors"], "SLIC accuracy: correct / wrong pixels"
    )
    unet = QgsRasterLayer(results["nc_unet"]["OUTPUT"], "U-Net land cover (sparse labels)")
    unet_metadata = QgsLayerMetadata()
    unet_metadata.addLink(
        QgsLayerMetadata.Link(
            "Accuracy report", "WWW:LINK", Path(results["nc_unet"]["accuracy"]["report"]).name
        )
    )
    unet.setMetadata(unet_metadata)
    unet_polygons = QgsVectorLayer(
        results["nc_unet"]["OUTPUT_POLYGONS"], "U-Net land-cover polygons", "ogr"
    )
    table = [
        {"value": int(value), "name": name, "color": colour}
        for value, name, colour in (part.split(":") for part in CLASSES.split(","))
    ]
    style_polygon_classes(unet_polygons, table)
    unet_polygons.setOpacity(0.6)
    dfc = QgsRasterLayer(results["nc_dfc"]["OUTPUT"], "DFC clusters")  # styled by its .qml
    dfc_classes = QgsRasterLayer(
        results["nc_dfc"]["OUTPUT_MAPPED"], "DFC clusters as 1996 land-cover classes"
    )
    # The NC files carry an unnamed Lambert conformal conic CRS (GRASS's export), which QGIS
    # shows as "Unknown CRS". It is NAD83 / North Carolina (EPSG:32119, the same
    # coordinates; the data README says so): name it for the layers and the project.
    nc_crs = QgsCoordinateReferenceSystem("EPSG:32119")
    # Each added layer goes on top of the layer tree: add the basemap first.
    for layer in [
        rgb,
        mean,
        errors,
        *reversed(layers.values()),
        dfc,
        dfc_classes,
        unet,
        unet_polygons,
        polygons,
    ]:
        assert layer.isValid(), layer.name()
        if not layer.crs().authid():
            layer.setCrs(nc_crs)
        project.addMapLayer(layer)
    root = project.layerTreeRoot()
    for stem in ("nc_quickshift", "nc_felzenszwalb", "nc_slic"):
        root.findLayer(layers[stem].id()).setItemVisibilityChecked(False)
    root.findLayer(mean.id()).setItemVisibilityChecked(False)
    root.findLayer(errors.id()).setItemVisibilityChecked(False)
    root.findLayer(unet_polygons.id()).setItemVisibilityChecked(False)
    root.findLayer(unet.id()).setItemVisibilityChecked(False)
    root.findLayer(dfc.id()).setItemVisibilityChecked(False)
    root.findLayer(dfc_classes.id()).setItemVisibilityChecked(False)
    project_metadata = project.metadata()
    project_metadata.setAbstract(
        "Accuracy reports: " + ", ".join(f"accuracy_{stem}.html" for stem in results)
    )
    project.setMetadata(project_metadata)
    project.setCrs(nc_crs)
    project.viewSettings().setDefaultViewExtent(QgsReferencedRectangle(rgb.extent(), nc_crs))
    path = out / "landseg-demo.qgz"
    project.setFileName(str(path))
    add_panel_drawings(project, rgb, data)
    assert project.write(str(path)), f"could not write {path}"

    # Preview: four panels as a user sees them in QGIS.
    panels = [
        ("Landsat 7 + SLIC outlines", [polygons, rgb]),
        ("SLIC", [layers["nc_slic"]]),
        ("QuickShift", [layers["nc_quickshift"]]),
        ("Felzenszwalb", [layers["nc_felzenszwalb"]]),
        ("U-Net land cover", [unet]),
        ("U-Net polygons", [unet_polygons, rgb]),
        ("DFC clusters", [dfc]),
        ("DFC mapped to classes", [dfc_classes]),
    ]
    size = QSize(489, 443)
    rows = (len(panels) + 1) // 2
    sheet = QImage(
        size.width() * 2 + 30, size.height() * rows + 40 * rows + 10, QImage.Format.Format_ARGB32
    )
    sheet.fill(QColor("white"))
    painter = QPainter(sheet)
    painter.setFont(QFont("DejaVu Sans", 12))
    for index, (title, panel_layers) in enumerate(panels):
        settings = QgsMapSettings()
        settings.setLayers(panel_layers)
        settings.setDestinationCrs(nc_crs)
        settings.setExtent(rgb.extent())
        settings.setOutputSize(size)
        settings.setBackgroundColor(QColor("white"))
        job = QgsMapRendererParallelJob(settings)
        job.start()
        job.waitForFinished()
        x = 10 + (index % 2) * (size.width() + 10)
        y = 35 + (index // 2) * (size.height() + 40)
        painter.setPen(QColor("black"))
        if title.startswith("U-Net"):
            oa = results["nc_unet"]["accuracy"]["OVERALL_ACCURACY"]
            caption = f"{title} (OA {oa:.2f} against the 1996 map)"
        elif title.startswith("DFC"):
            dfc_result = results["nc_dfc"]
            caption = f"{title} ({dfc_result['N_CLUSTERS']} clusters, ARI {dfc_result['ARI']:.2f})"
        else:
            count = results[
                {
                    "SLIC": "nc_slic",
                    "QuickShift": "nc_quickshift",
                    "Felzenszwalb": "nc_felzenszwalb",
                }.get(title, "nc_slic")
            ]["N_SEGMENTS"]
            caption = f"{title} ({count} segments)"
        painter.drawText(x, y - 10, caption)
        painter.drawImage(x, y, job.renderedImage())
    painter.setPen(QColor("#555555"))
    painter.drawText(
        10,
        sheet.height() - 12,
        "LandSeg demo, NC Landsat 7 (GRASS nc_spm_08, CC BY-SA 3.0 OSGeo)",
    )
    painter.end()
    sheet.save(str(out / "preview.png"))
    del Qt
    app.exitQgis()
    return path


def main() -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nc-landsat7")
    parser.add_argument("--output", type=Path, default=ROOT / "demo-output")
    args = parser.parse_args()
    out = args.output.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    scene = out / "landsat_multiband.tif"
    shutil.copy(args.data / "landsat_multiband.tif", scene)
    results = run_algorithms(scene, out)
    assess(out, args.data / "strata.tif", results)
    classify(scene, args.data, out, results)
    cluster_dfc(scene, args.data, out, results)
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    project = build_project(scene, out, results, args.data)
    print(f"Project: {project}\nPreview: {out / 'preview.png'}")


if __name__ == "__main__":
    main()
