"""Accuracy metrics from one contingency table, cross-checked against scikit-learn."""

import io
import itertools
import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from core.contingency import ConfusionAccumulator
from core.metrics import (
    assess_accuracy,
    confusion_csv,
    match_clusters,
    rand_indices,
    to_json_dict,
    write_confusion_csv,
)

# --- helpers -----------------------------------------------------------------------------


def accumulate(pred, ref, valid=None, *, rows=7, **kwargs):
    """Feed the arrays in horizontal windows, as the raster reader does."""
    acc = ConfusionAccumulator(**kwargs)
    for top in range(0, pred.shape[0], rows):
        window = slice(top, top + rows)
        acc.update(pred[window], ref[window], None if valid is None else valid[window])
    return acc


def expand(counts, pred_values, ref_values):
    """Pixel lists (pred, ref) of a contingency table."""
    pred, ref = [], []
    for i, p in enumerate(pred_values):
        for j, r in enumerate(ref_values):
            pred += [p] * int(counts[i][j])
            ref += [r] * int(counts[i][j])
    return np.array(pred), np.array(ref)


def assert_matches_sklearn_classes(result, pred, ref, zero_division=0.0):
    """Class mode: every metric equals scikit-learn's on the flat pixel arrays."""
    labels = np.union1d(pred, ref)
    np.testing.assert_array_equal(result.classes, labels)
    np.testing.assert_array_equal(
        result.confusion, skm.confusion_matrix(ref, pred, labels=labels).T
    )
    assert result.overall_accuracy == pytest.approx(skm.accuracy_score(ref, pred))
    assert result.kappa == pytest.approx(skm.cohen_kappa_score(ref, pred))
    kw = {"labels": labels, "zero_division": zero_division}
    # IoU's denominator is never 0 for a class of the union; jaccard_score refuses NaN.
    jkw = {"labels": labels, "zero_division": 0.0}
    p, r, f, s = skm.precision_recall_fscore_support(ref, pred, **kw)
    np.testing.assert_allclose(result.precision, p)
    np.testing.assert_allclose(result.recall, r)
    np.testing.assert_allclose(result.f1, f)
    np.testing.assert_array_equal(result.support, s)
    np.testing.assert_allclose(result.iou, skm.jaccard_score(ref, pred, average=None, **jkw))
    for average, summary in (("macro", result.macro), ("weighted", result.weighted)):
        p, r, f, _ = skm.precision_recall_fscore_support(ref, pred, average=average, **kw)
        assert summary["precision"] == pytest.approx(p)
        assert summary["recall"] == pytest.approx(r)
        assert summary["f1"] == pytest.approx(f)
        assert summary["iou"] == pytest.approx(skm.jaccard_score(ref, pred, average=average, **jkw))
    assert result.mean_iou == result.macro["iou"]
    assert result.rand_index == pytest.approx(skm.rand_score(ref, pred))
    assert result.adjusted_rand_index == pytest.approx(skm.adjusted_rand_score(ref, pred))


def assert_matches_sklearn_clusters(result, pred, ref):
    """Cluster mode: metrics equal scikit-learn's on the remapped prediction (-1 = unmatched)."""
    mapped = np.array(
        [-1 if result.mapping[int(v)] is None else result.mapping[int(v)] for v in pred]
    )
    labels = np.unique(ref)
    np.testing.assert_array_equal(result.classes, labels)
    full = skm.confusion_matrix(ref, mapped, labels=np.r_[labels, -1]).T
    np.testing.assert_array_equal(result.confusion, full[:-1, :-1])
    np.testing.assert_array_equal(result.unmatched, full[-1, :-1])
    assert result.overall_accuracy == pytest.approx(skm.accuracy_score(ref, mapped))
    assert result.kappa == pytest.approx(skm.cohen_kappa_score(ref, mapped))
    kw = {"labels": labels, "zero_division": 0.0}
    p, r, f, s = skm.precision_recall_fscore_support(ref, mapped, **kw)
    np.testing.assert_allclose(result.precision, p)
    np.testing.assert_allclose(result.recall, r)
    np.testing.assert_allclose(result.f1, f)
    np.testing.assert_array_equal(result.support, s)
    np.testing.assert_allclose(result.iou, skm.jaccard_score(ref, mapped, average=None, **kw))
    p, r, f, _ = skm.precision_recall_fscore_support(ref, mapped, average="macro", **kw)
    assert (result.macro["precision"], result.macro["recall"], result.macro["f1"]) == pytest.approx(
        (p, r, f)
    )
    assert result.mean_iou == pytest.approx(skm.jaccard_score(ref, mapped, average="macro", **kw))
    # The Rand indices are computed on the clusters themselves, before any mapping.
    assert result.rand_index == pytest.approx(skm.rand_score(ref, pred))
    assert result.adjusted_rand_index == pytest.approx(skm.adjusted_rand_score(ref, pred))


# --- the worked example ------------------------------------------------------------------

WORKED = [[8, 10, 1], [5, 60, 50], [3, 30, 83]]  # rows = prediction, columns = ground truth


def test_worked_3x3_example():
    result = assess_accuracy(ConfusionAccumulator.from_counts(WORKED))
    assert result.precision[0] == pytest.approx(8 / 19)
    assert result.recall[0] == pytest.approx(8 / 16)
    assert result.overall_accuracy == pytest.approx(151 / 250)
    assert result.n_pixels == 250
    np.testing.assert_array_equal(result.confusion, WORKED)
    np.testing.assert_array_equal(result.support, [16, 100, 134])
    np.testing.assert_array_equal(result.predicted, [19, 115, 116])
    np.testing.assert_allclose(np.diag(result.confusion_row_normalized), result.precision)
    np.testing.assert_allclose(np.diag(result.confusion_col_normalized), result.recall)
    pred, ref = expand(WORKED, [1, 2, 3], [1, 2, 3])
    assert_matches_sklearn_classes(result, pred, ref)
    # The same table counted from pixels, in windows, gives the same result.
    rng = np.random.default_rng(0)
    order = rng.permutation(250)
    again = assess_accuracy(accumulate(pred[order].reshape(25, 10), ref[order].reshape(25, 10)))
    np.testing.assert_array_equal(again.confusion, WORKED)


# --- the accumulator ---------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 7, 64])
def test_windows_add_up_to_the_whole_table_with_growing_values(rows):
    rng = np.random.default_rng(rows)
    # Cluster ids 1..37 against 0/255-style codes; new values appear in later windows.
    pred = rng.integers(1, 38, (64, 50)) * np.linspace(1, 3, 64).astype(int)[:, None]
    ref = rng.choice([0, 3, 255, -4], (64, 50))
    ref[40:] = rng.choice([7, 1000], (24, 50))
    whole = ConfusionAccumulator()
    whole.update(pred, ref)
    parts = accumulate(pred, ref, rows=rows)
    for a, b in zip(parts.table, whole.table, strict=True):
        np.testing.assert_array_equal(a, b)
    pv, rv, counts = parts.table
    np.testing.assert_array_equal(pv, np.unique(pred))
    np.testing.assert_array_equal(rv, np.unique(ref))
    assert counts.dtype == np.int64 and counts.sum() == pred.size == parts.n_pixels
    cm = skm.confusion_matrix(ref.ravel(), pred.ravel(), labels=np.union1d(pv, rv)).T
    np.testing.assert_array_equal(
        counts, cm[np.isin(np.union1d(pv, rv), pv)][:, np.isin(np.union1d(pv, rv), rv)]
    )


def test_huge_value_range_uses_the_unique_path():
    ids = np.array([[-(2**40), 5, 2**50], [5, 5, -(2**40)]], dtype=np.int64)
    ref = np.array([[1, 2, 2], [1, 1, 1]], dtype=np.uint8)
    acc = ConfusionAccumulator()
    acc.update(ids, ref)
    pv, rv, counts = acc.table
    assert pv.tolist() == [-(2**40), 5, 2**50] and rv.tolist() == [1, 2]
    assert counts.tolist() == [[2, 0], [2, 1], [0, 1]]


def test_valid_mask_ignored_values_and_nan_are_left_out():
    pred = np.array([[1.0, 2.0, np.nan], [2.0, 2.0, 1.0]], dtype=np.float32)
    ref = np.array([[1, 0, 1], [2, 255, 1]])
    valid = np.array([[True, True, True], [True, True, False]])
    acc = ConfusionAccumulator(ignore_reference=[0, 255])
    acc.update(pred, ref, valid)
    assert acc.pixels_seen == 6 and acc.n_pixels == 2
    assert acc.table.counts.tolist() == [[1, 0], [0, 1]]
    acc = ConfusionAccumulator(ignore_prediction=[2])
    acc.update(pred, ref)
    assert acc.table.pred_values.tolist() == [1] and acc.n_pixels == 2


def test_merge_and_from_counts():
    a = ConfusionAccumulator.from_counts([[1, 2]], pred_values=[5], ref_values=[1, 2])
    b = ConfusionAccumulator.from_counts([[3], [4]], pred_values=[5, 6], ref_values=[2])
    a.merge(b)
    assert a.table.pred_values.tolist() == [5, 6]
    assert a.table.counts.tolist() == [[1, 5], [0, 4]]
    assert a.pixels_seen == 10


def test_bad_inputs_are_explained():
    acc = ConfusionAccumulator()
    with pytest.raises(ValueError, match="differ in shape"):
        acc.update(np.ones((3, 4), int), np.ones((4, 3), int))
    with pytest.raises(ValueError, match="valid mask"):
        acc.update(np.ones((3, 4), int), np.ones((3, 4), int), np.ones((4, 3), bool))
    with pytest.raises(ValueError, match="non-integer"):
        acc.update(np.full((2, 2), 1.5), np.ones((2, 2), int))
    with pytest.raises(ValueError, match="integer class values"):
        acc.update(np.full((2, 2), "a"), np.ones((2, 2), int))
    with pytest.raises(ValueError, match="2-D table"):
        ConfusionAccumulator.from_counts([1, 2])
    with pytest.raises(ValueError, match="give 2 prediction"):
        ConfusionAccumulator.from_counts([[1], [2]], pred_values=[1])


def test_nothing_valid_is_explained():
    acc = ConfusionAccumulator(ignore_reference=[0])
    acc.update(np.ones((4, 4), int), np.zeros((4, 4), int))
    acc.update(np.ones((4, 4), int), np.ones((4, 4), int), np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match=r"No pixel is valid in both rasters.*IGNORE_VALUE"):
        assess_accuracy(acc)
    with pytest.raises(ValueError, match="No pixel is valid"):
        rand_indices(np.zeros((2, 2), int))


def test_no_class_in_common_suggests_cluster_mode():
    acc = ConfusionAccumulator()
    acc.update(np.array([[101, 102]]), np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"no class value in common.*cluster mode"):
        assess_accuracy(acc)
    assert assess_accuracy(acc, mode="clusters").overall_accuracy == 1.0
    with pytest.raises(ValueError, match="Unknown mode"):
        assess_accuracy(acc, mode="segments")
    with pytest.raises(ValueError, match="Unknown cluster assignment"):
        assess_accuracy(acc, mode="clusters", assignment="greedy")


# --- class mode against scikit-learn -----------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_class_metrics_equal_sklearn_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 9))
    ref = rng.integers(1, k + 1, (40, 30))
    noise = rng.integers(1, k + 3, ref.shape)  # classes k+1, k+2 exist only in the prediction
    pred = np.where(rng.random(ref.shape) < rng.uniform(0.2, 0.9), ref, noise)
    if seed % 2:
        pred[pred == 1] = 2  # class 1 never predicted (precision 0/0)
        ref[ref == k] = 1  # class k absent from the reference (recall 0/0)
    valid = rng.random(ref.shape) > 0.1
    result = assess_accuracy(accumulate(pred, ref, valid))
    assert_matches_sklearn_classes(result, pred[valid], ref[valid])


def test_zero_division_nan_is_left_out_of_averages_like_sklearn():
    pred = np.array([2, 2, 2, 3, 3, 1])
    ref = np.array([1, 2, 2, 3, 2, 1])
    pred[pred == 1] = 2  # class 1 never predicted
    result = assess_accuracy(accumulate(pred[None], ref[None]), zero_division=np.nan)
    assert np.isnan(result.precision[0])
    assert_matches_sklearn_classes(result, pred, ref, zero_division=np.nan)


def test_perfect_single_class_map():
    result = assess_accuracy(accumulate(np.ones((3, 3), int), np.ones((3, 3), int)))
    assert result.overall_accuracy == 1.0 and np.isnan(result.kappa)
    assert result.rand_index == 1.0 and result.adjusted_rand_index == 1.0
    assert json.dumps(to_json_dict(result), allow_nan=False)


# --- Rand indices ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 4), min_size=2, max_size=60).flatmap(
        lambda a: st.tuples(
            st.just(a), st.lists(st.integers(0, 5), min_size=len(a), max_size=len(a))
        )
    )
)
def test_rand_indices_equal_sklearn(labels):
    a, b = (np.array(x) for x in labels)
    table = accumulate(a[None], b[None]).table
    ri, ari = rand_indices(table.counts)
    assert ri == pytest.approx(skm.rand_score(b, a), abs=1e-12)
    assert ari == pytest.approx(skm.adjusted_rand_score(b, a), abs=1e-12)


def test_rand_indices_do_not_overflow_on_billions_of_pixels():
    small = np.array([[8, 10, 1], [5, 60, 50], [3, 30, 83]], dtype=np.int64)
    counts = small * 40_000_000  # 1e10 pixels: n(n-1)/2 = 5e19 > int64 max
    assert int(counts.sum()) ** 2 // 2 > np.iinfo(np.int64).max
    ri, ari = rand_indices(counts)

    def c2(x):
        return Fraction(int(x) * (int(x) - 1), 2)

    # Hubert & Arabie's form, in exact rationals.
    index = sum(c2(x) for x in counts.ravel())
    rows = sum(c2(x) for x in counts.sum(axis=1))
    cols = sum(c2(x) for x in counts.sum(axis=0))
    expected = rows * cols / c2(counts.sum())
    exact_ari = (index - expected) / ((rows + cols) / 2 - expected)
    exact_ri = (c2(counts.sum()) + 2 * index - rows - cols) / c2(counts.sum())
    assert ari == pytest.approx(float(exact_ari), rel=1e-12)
    assert ri == pytest.approx(float(exact_ri), rel=1e-12)
    # Scaling the counts barely moves the indices.
    assert ari == pytest.approx(rand_indices(small * 1000)[1], rel=1e-4)
    result = assess_accuracy(ConfusionAccumulator.from_counts(counts))
    assert result.overall_accuracy == pytest.approx(151 / 250)
    assert result.n_pixels == 10_000_000_000


# --- cluster mode ------------------------------------------------------------------------


def clustered(seed, n_clusters, n_classes=5, shape=(40, 40)):
    """A reference and a clustering that splits / merges its classes, with noise."""
    rng = np.random.default_rng(seed)
    ref = rng.integers(1, n_classes + 1, shape)
    pred = rng.integers(0, n_clusters, shape) if n_clusters < n_classes else ref * 0
    if n_clusters >= n_classes:
        extra = rng.integers(0, n_clusters // n_classes + 1, shape)
        pred = np.minimum((ref - 1) + n_classes * extra, n_clusters - 1)
    pred = np.where(rng.random(shape) < 0.25, rng.integers(0, n_clusters, shape), pred)
    return pred * 10 + 100, ref  # cluster ids unrelated to the class codes


@pytest.mark.parametrize(("seed", "n_clusters"), [(0, 5), (1, 12), (2, 3), (3, 37), (4, 8)])
@pytest.mark.parametrize("assignment", ["hungarian", "majority"])
def test_cluster_metrics_equal_sklearn_after_mapping(seed, n_clusters, assignment):
    pred, ref = clustered(seed, n_clusters)
    result = assess_accuracy(accumulate(pred, ref), mode="clusters", assignment=assignment)
    assert result.assignment == assignment
    assert set(result.mapping) == set(np.unique(pred).tolist())
    assert_matches_sklearn_clusters(result, pred.ravel(), ref.ravel())
    targets = [t for t in result.mapping.values() if t is not None]
    if assignment == "hungarian":
        assert len(targets) == len(set(targets)) == min(len(result.mapping), 5)
    else:
        assert None not in result.mapping.values()


def test_hungarian_mapping_is_optimal_and_majority_is_at_least_as_accurate():
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 50, (5, 4))
    table = ConfusionAccumulator.from_counts(counts, pred_values=[3, 9, 11, 20, 21]).table
    mapping = match_clusters(table)
    best = max(
        sum(counts[i, j] for i, j in zip(rows, range(4), strict=True))
        for rows in itertools.permutations(range(5), 4)
    )
    got = sum(counts[i, t - 1] for i, t in enumerate(mapping.values()) if t is not None)
    assert got == best and list(mapping.values()).count(None) == 1
    majority = match_clusters(table, assignment="majority")
    assert majority == {
        int(c): int(counts[i].argmax()) + 1 for i, c in enumerate(table.pred_values)
    }
    acc = ConfusionAccumulator.from_counts(counts, pred_values=[3, 9, 11, 20, 21])
    oa_h = assess_accuracy(acc, mode="clusters").overall_accuracy
    oa_m = assess_accuracy(acc, mode="clusters", assignment="majority").overall_accuracy
    assert oa_m >= oa_h == pytest.approx(best / counts.sum())


def test_cluster_mode_on_relabelled_classes_recovers_the_class_metrics():
    rng = np.random.default_rng(8)
    ref = rng.integers(1, 6, (30, 30))
    pred = np.where(rng.random(ref.shape) < 0.8, ref, rng.integers(1, 6, ref.shape))
    relabel = np.array([0, 42, 7, 13, 99, 5])  # cluster id of each class
    as_classes = assess_accuracy(accumulate(pred, ref))
    as_clusters = assess_accuracy(accumulate(relabel[pred], ref), mode="clusters")
    assert as_clusters.mapping == {42: 1, 7: 2, 13: 3, 99: 4, 5: 5}
    np.testing.assert_array_equal(as_clusters.confusion, as_classes.confusion)
    assert as_clusters.kappa == pytest.approx(as_classes.kappa)
    assert as_clusters.adjusted_rand_index == pytest.approx(as_classes.adjusted_rand_index)


# --- JSON and CSV ------------------------------------------------------------------------


def test_json_dict_holds_every_metric():
    pred, ref = clustered(1, 7)
    result = assess_accuracy(accumulate(pred, ref), mode="clusters")
    names = {1: "developed", 2: "agriculture"}
    data = json.loads(json.dumps(to_json_dict(result, class_names=names), allow_nan=False))
    assert data["mode"] == "clusters" and data["assignment"] == "hungarian"
    assert data["overall_accuracy"] == pytest.approx(result.overall_accuracy)
    assert data["kappa"] == pytest.approx(result.kappa)
    assert data["adjusted_rand_index"] == pytest.approx(result.adjusted_rand_index)
    assert data["mean_iou"] == pytest.approx(result.mean_iou)
    assert data["macro"]["f1"] == pytest.approx(result.macro["f1"])
    assert data["weighted"]["recall"] == pytest.approx(result.weighted["recall"])
    assert [c["value"] for c in data["classes"]] == [1, 2, 3, 4, 5]
    assert data["classes"][0]["name"] == "developed" and data["classes"][2]["name"] is None
    assert data["classes"][1]["precision"] == pytest.approx(result.precision[1])
    assert data["confusion_matrix"]["counts"] == result.confusion.tolist()
    assert data["confusion_matrix"]["unmatched"] == result.unmatched.tolist()
    assert sum(m["class"] is None for m in data["mapping"]) == 2
    assert sum(m["pixels"] for m in data["mapping"]) == result.n_pixels == data["n_pixels"]
    assert np.sum(data["contingency"]["counts"]) == result.n_pixels


def test_confusion_csv_layout():
    result = assess_accuracy(ConfusionAccumulator.from_counts(WORKED, [1, 2, 3], [1, 2, 3]))
    text = confusion_csv(result, class_names={1: "developed", 3: "water, open"})
    assert text.splitlines() == [
        'prediction \\ reference,developed,2,"water, open"',
        "developed,8,10,1",
        "2,5,60,50",
        '"water, open",3,30,83',
    ]
    buffer = io.StringIO()
    write_confusion_csv(result, buffer)
    assert buffer.getvalue().splitlines()[0] == "prediction \\ reference,1,2,3"


def test_confusion_csv_unmatched_row_and_file(tmp_path):
    acc = ConfusionAccumulator.from_counts([[5, 1], [1, 4], [2, 2]], [10, 20, 30], [1, 2])
    result = assess_accuracy(acc, mode="clusters")
    path = tmp_path / "confusion.csv"
    write_confusion_csv(result, path)
    assert path.read_text(encoding="utf-8").splitlines()[-1] == "unmatched,2,2"


# --- real data ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nc_labels(nc_dir):
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(nc_dir / "strata.tif") as src:
        strata = src.read(1)
        nodata = src.nodata
    with rasterio.open(nc_dir / "landsat96_labelled_pixels.tif") as src:
        labelled = src.read(1)
    return strata, labelled, nodata


def test_real_strata_against_a_perturbed_copy(nc_labels):
    strata, _, nodata = nc_labels
    rng = np.random.default_rng(0)
    shifted = np.roll(strata, (2, -1), axis=(0, 1))  # misregistration
    noisy = np.where(rng.random(strata.shape) < 0.1, rng.integers(1, 8, strata.shape), shifted)
    noisy = noisy.astype(np.float32)
    valid = (strata != nodata) & (noisy != nodata)
    acc = accumulate(noisy, strata, valid, rows=128)
    result = assess_accuracy(acc)
    assert acc.pixels_seen == strata.size and result.n_pixels == valid.sum()
    p, r = noisy[valid].astype(int), strata[valid].astype(int)
    assert_matches_sklearn_classes(result, p, r)
    assert 0.5 < result.overall_accuracy < 0.95 and result.adjusted_rand_index > 0.2
    # The same map with shuffled class codes, read as clusters, gets them back.
    codes = np.array([0, 17, 3, 99, 42, 8, 61, 5])
    clusters = assess_accuracy(accumulate(codes[p][None], r[None], rows=1), mode="clusters")
    assert clusters.mapping == {17: 1, 3: 2, 99: 3, 42: 4, 8: 5, 61: 6, 5: 7}
    assert clusters.overall_accuracy == pytest.approx(result.overall_accuracy)


def test_real_sparse_labelled_pixels_against_strata(nc_labels):
    strata, labelled, nodata = nc_labels
    valid = strata != nodata
    acc = accumulate(strata, labelled, valid, rows=100, ignore_reference=[int(nodata)])
    result = assess_accuracy(acc)
    sparse = (labelled != nodata) & valid
    assert result.n_pixels == sparse.sum() > 2800
    assert result.overall_accuracy > 0.99  # the README: 99.5 % agree
    assert_matches_sklearn_classes(result, strata[sparse].astype(int), labelled[sparse].astype(int))
