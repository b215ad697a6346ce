"""Self-contained HTML report of an accuracy assessment."""

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from core.contingency import ConfusionAccumulator
from core.metrics import assess_accuracy
from core.report import render_html

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = {1: "developed", 2: "<script>alert('x')</script>", 3: "water & sediment"}
COLORS = {1: "#ff0000", 2: "red;background:url(http://evil.example/x.png)", 3: "tan"}


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(page):
    parser = _Tags()
    parser.feed(page)
    return parser.tags


@pytest.fixture(scope="module")
def class_result():
    acc = ConfusionAccumulator.from_counts([[8, 10, 1], [5, 60, 50], [3, 30, 83]])
    return assess_accuracy(acc)


@pytest.fixture(scope="module")
def class_page(class_result):
    return render_html(
        class_result,
        title="Accuracy <of> Raleigh",
        inputs={"Prediction": "/data/<pred>.tif", "Reference": "strata.tif"},
        parameters={"IGNORE_VALUE": 0, "MODE": "classes & more"},
        class_names=NAMES,
        class_colors=COLORS,
    )


def test_headline_numbers_and_tables(class_page, class_result):
    assert f"{151 / 250:.3f}" in class_page  # overall accuracy 0.604
    for value in (
        class_result.kappa,
        class_result.mean_iou,
        class_result.macro["f1"],
        class_result.adjusted_rand_index,
        8 / 19,  # precision of class 1
        8 / 16,  # recall of class 1
        class_result.weighted["f1"],
    ):
        assert f"{value:.3f}" in class_page
    for heading in ("Overall accuracy", "Cohen's kappa", "Mean IoU", "Macro F1", "Adjusted Rand"):
        assert heading in class_page
    assert "Cluster → class mapping" not in class_page
    assert "250 pixels assessed" in class_page


def test_pictures_are_embedded_pngs(class_page):
    images = [attrs["src"] for tag, attrs in tags(class_page) if tag == "img"]
    assert len(images) >= 2
    assert class_page.count('<img src="data:image/png;base64,') >= 2
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_MAGIC)


def test_self_contained_and_user_strings_escaped(class_page):
    assert "<script" not in class_page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in class_page
    assert "water &amp; sediment" in class_page
    assert "Accuracy &lt;of&gt; Raleigh" in class_page and "/data/&lt;pred&gt;.tif" in class_page
    assert "classes &amp; more" in class_page and "IGNORE_VALUE" in class_page
    # Nothing is fetched: no external address in an attribute, no CSS url().
    for _, attrs in tags(class_page):
        for value in attrs.values():
            assert not re.match(r"\s*(https?:)?//", value or "")
    assert "url(" not in class_page and "evil.example" not in class_page
    assert "background:#ff0000" in class_page and "background:tan" in class_page


def test_cluster_mode_shows_the_mapping_and_unmatched_clusters():
    counts = [[50, 2, 1], [3, 40, 5], [0, 4, 30], [6, 7, 8], [1, 1, 0]]
    acc = ConfusionAccumulator.from_counts(counts, pred_values=[10, 20, 30, 40, 50])
    result = assess_accuracy(acc, mode="clusters")
    page = render_html(result, title="k-means", inputs={}, parameters={}, class_names=None)
    assert "Cluster → class mapping" in page and "Hungarian" in page
    assert page.count("<i>unmatched</i>") == 2
    assert f"{result.adjusted_rand_index:.3f}" in page and f"{result.overall_accuracy:.3f}" in page
    assert page.count("data:image/png;base64,") >= 2


def test_undefined_kappa_and_many_classes_render():
    single = assess_accuracy(ConfusionAccumulator.from_counts([[9]]))
    assert "—" in render_html(single, title="one class", inputs={}, parameters={})
    rng = np.random.default_rng(0)
    many = assess_accuracy(ConfusionAccumulator.from_counts(rng.integers(0, 30, (40, 40))))
    page = render_html(many, title="40 classes", inputs={}, parameters={})
    assert page.count("data:image/png;base64,") == 2


def test_short_counts_keep_their_magnitude():
    from core.report import _short_count

    assert _short_count(9_999) == "9999"
    assert _short_count(47_369) == "47.4k"
    assert _short_count(2_500_000) == "2.5M"
    assert _short_count(3_000_000_000) == "3G"
