"""Tests of the benchmark suite: ``python -m sk_softmax bench``.

The helpers are tested on fake clocks and small data; the whole quick
benchmark runs once (about half a minute on two cores) and its JSON is
checked for every group, finite numbers and sane fields.  Nothing here
asserts anything about speed.
"""

import contextlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from sk_softmax import _bench
from sk_softmax.__main__ import main

# ------------------------------------------------------------------ helpers


class FakeClock:
    """A clock that advances only when a fake workload says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def work(self, seconds, log=None, name=None):
        def fn():
            self.now += seconds
            if log is not None:
                log.append(name)
            return name

        return fn


def test_compare_alternates_sides_abba():
    clock, log = FakeClock(), []
    stats, result_a, result_b = _bench.compare(
        clock.work(2.0, log, "a"), clock.work(1.0, log, "b"), repeat=5, clock=clock
    )
    assert log == list("abbaabbaab")
    assert stats["order"] == "abbaabbaab"
    assert stats["pairs"] == 5
    assert stats["times_a"] == [2.0] * 5 and stats["times_b"] == [1.0] * 5
    assert stats["ratio"] == pytest.approx(2.0)
    assert stats["ratio_best"] == pytest.approx(2.0)
    assert (result_a, result_b) == ("a", "b")


def test_time_alternating_rotates_every_side_through_every_position():
    clock, log = FakeClock(), []
    fns = {
        name: clock.work(cost, log, name)
        for name, cost in zip("abc", (1, 2, 4), strict=True)
    }
    stats, results = _bench.time_alternating(fns, repeat=3, clock=clock)
    assert "".join(log) == "abcbcacab"
    assert stats["rounds"] == 3
    assert [stats[name]["time"] for name in "abc"] == [1, 2, 4]
    assert results == {"a": "a", "b": "b", "c": "c"}


def test_compare_ratio_is_of_medians():
    clock = FakeClock()
    costs = iter([1.0, 1.0, 1.0, 9.0, 1.0, 1.0])  # a b b a a b

    def side():
        clock.now += next(costs)

    stats, _, _ = _bench.compare(side, side, repeat=3, clock=clock)
    assert stats["times_a"] == [1.0, 9.0, 1.0]
    assert stats["time_a"] == 1.0 and stats["ratio"] == 1.0


def test_compare_budget_stops_after_one_pair():
    clock = FakeClock()
    stats, _, _ = _bench.compare(
        clock.work(10.0), clock.work(10.0), repeat=5, budget_s=30.0, clock=clock
    )
    assert stats["pairs"] == 1
    stats, _, _ = _bench.compare(
        clock.work(1.0), clock.work(1.0), repeat=5, budget_s=30.0, clock=clock
    )
    assert stats["pairs"] == 5


@pytest.mark.parametrize("repeat, pairs", [(5, 3), (2, 2)])
def test_compare_min_rounds_overrides_the_budget(repeat, pairs):
    # Pairs of 20 s against a budget of 30 s: one pair, but for min_rounds
    # (never more than repeat).
    clock = FakeClock()
    stats, _, _ = _bench.compare(
        clock.work(10.0),
        clock.work(10.0),
        repeat=repeat,
        budget_s=30.0,
        min_rounds=3,
        clock=clock,
    )
    assert stats["pairs"] == pairs
    assert stats["times_a"] == [10.0] * pairs


@pytest.mark.parametrize("quick, pairs", [(False, 15), (True, 2)])
def test_compared_fits_run_more_pairs_within_the_budget(quick, pairs):
    # Whole fits, short and noisy: three times the pairs of the other
    # comparisons (quick mode: as many).
    bench = _bench.Bench(quick=quick)
    bench.settle_s = bench.rewarm_below_s = 0.0
    workload = _bench.make_workloads(quick=True, seed=0)["digits"]
    stats, _, _ = bench.compare_fits(workload, "ours lbfgs", "LR lbfgs")
    assert stats["pairs"] == pairs
    record = bench.fits[workload.name, workload.dtype, "ours lbfgs"]
    assert len(record["times"]) == pairs


def test_compare_calibrates_calls_per_sample():
    clock, log = FakeClock(), []
    stats, _, _ = _bench.compare(
        clock.work(0.001, log, "a"),
        clock.work(0.004, log, "b"),
        repeat=2,
        min_time_s=0.01,
        clock=clock,
    )
    assert stats["number"] == [10, 3]
    # one calibration call each, then 2 samples of each side
    assert log.count("a") == 1 + 2 * 10 and log.count("b") == 1 + 2 * 3
    assert stats["time_a"] == pytest.approx(0.001)
    assert stats["ratio"] == pytest.approx(0.25)


def test_compare_enters_context_around_each_sample_of_its_side():
    clock, log = FakeClock(), []

    @contextlib.contextmanager
    def limited():
        log.append("enter")
        yield 1
        log.append("exit")

    _bench.compare(
        clock.work(1.0, log, "a"), clock.work(1.0, log, "b"), repeat=2,
        context_b=limited, clock=clock,
    )  # fmt: skip
    assert log == ["a", "enter", "b", "exit", "enter", "b", "exit", "a"]


def test_short_sides_are_called_once_untimed_before_each_timed_call():
    clock, log = FakeClock(), []

    def side(name, warm_cost, cold_cost):
        # Dearer when another side ran last, as after a pause.
        def fn():
            clock.now += warm_cost if log and log[-1] == name else cold_cost
            log.append(name)

        return fn

    fns = {"a": side("a", 1.0, 3.0), "b": side("b", 5.0, 5.0)}
    stats, _ = _bench.time_alternating(fns, repeat=3, clock=clock, rewarm_below_s=4.0)
    # a's first sample has no previous time to go by; then a (3 s cold,
    # 1 s warm) gets an untimed call first, b (5 s, over 4) does not.
    assert "".join(log) == "abbaaaab"
    assert stats["a"]["times"] == [3.0, 1.0, 1.0]
    assert stats["b"]["times"] == [5.0, 5.0, 5.0]
    clock, log = FakeClock(), []
    fns = {"a": side("a", 1.0, 3.0), "b": side("b", 5.0, 5.0)}
    stats, _ = _bench.time_alternating(fns, repeat=3, clock=clock)
    # Without: a pays the cold cost unless it follows itself (a b, b a, a b).
    assert "".join(log) == "abbaab" and stats["a"]["times"] == [3.0, 3.0, 1.0]


def test_peak_memory_sees_numpy_allocations():
    def allocate():
        return np.ones(2**20)  # 8 MiB

    result, peak = _bench.peak_memory(allocate)
    assert result.shape == (2**20,)
    assert peak >= 8 * 2**20


def test_minimize_counter_reads_lbfgs_evaluations():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    y = rng.integers(0, 3, 200)
    with _bench._MinimizeCounter() as counter:
        model = LogisticRegression().fit(X, y)
    assert counter.calls == 1
    assert counter.nfev >= model.n_iter_[0] >= 1
    assert _bench._passes(model, counter) == counter.nfev


def test_teacher_labels_reach_the_bayes_accuracy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 20))
    y, bayes = _bench.teacher_labels(rng, X, 5)
    assert bayes == pytest.approx(_bench.BAYES_ACCURACY, abs=0.005)
    assert y.shape == (20_000,) and set(np.unique(y)) == set(range(5))


def test_random_csr_rows_and_density():
    rng = np.random.default_rng(0)
    X = _bench.random_csr(rng, 500, 1000, 0.01)
    assert sp.isspmatrix_csr(X) and X.shape == (500, 1000)
    assert X.has_canonical_format
    per_row = np.diff(X.indptr)
    assert per_row.max() <= 10 and per_row.mean() > 9.5


def test_quick_workloads_and_matched_objectives():
    """LR, MLP(lbfgs) and ours reach the same J with the alpha mapping used."""
    workloads = _bench.make_workloads(quick=True, seed=0)
    for name in ("digits", "dense", "wide", "sparse"):
        for suffix in ("", "32"):
            assert name + suffix in workloads
    assert workloads["dense32"].X_train.dtype == np.float32
    assert workloads["dense32"].X_train64.dtype == np.float64
    wl = workloads["dense"]
    values = {}
    for method in ("ours lbfgs tol=1e-8", "LR lbfgs tol=1e-8", "MLP lbfgs"):
        model, passes = _bench._fit_counted(
            _bench.make_estimator(method, wl), wl.X_train, wl.y_train
        )
        assert passes >= 1
        values[method] = _bench.objective(wl, model)
    optimum = values["ours lbfgs tol=1e-8"]
    assert _bench.relative_gap(values["LR lbfgs tol=1e-8"], optimum) == (
        pytest.approx(0, abs=1e-9)
    )
    assert abs(_bench.relative_gap(values["MLP lbfgs"], optimum)) < 1e-3


def test_grid_grows_geometrically():
    grid = _bench._grid(100)
    assert grid[:6] == [1, 2, 3, 5, 8, 13]
    assert grid[-1] <= 100 and np.all(np.diff(grid) > 0)


def test_unknown_group_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--quick", "--only", "defaults,nope"])
    assert exc.value.code == 2
    assert "unknown group(s) nope" in capsys.readouterr().err


def test_only_runs_the_named_groups(tmp_path):
    output = tmp_path / "only.json"
    assert (
        main(["bench", "--quick", "--only", "defaults", "--output", str(output)]) == 0
    )
    results = json.loads(output.read_text())
    assert list(results["groups"]) == ["defaults"]


# ------------------------------------------------------------- quick run


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "bench.json"
    assert main(["bench", "--quick", "--output", str(output)]) == 0
    return json.loads(output.read_text())


def _numbers(obj):
    if isinstance(obj, dict):
        for value in obj.values():
            yield from _numbers(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _numbers(value)
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield obj


def _positive(row, *keys):
    for key in keys:
        assert row[key] is not None and row[key] > 0, (key, row)


def test_quick_json_has_meta_and_every_group(quick_results):
    meta = quick_results["meta"]
    assert meta["quick"] is True
    assert any(entry["user_api"] == "blas" for entry in meta["threadpool_info"])
    assert set(quick_results["groups"]) == set(_bench.GROUPS)
    for name, info in quick_results["workloads"].items():
        assert info["X_nbytes"] > 0 and info["n_train"] > 0, name
        assert info["optimum"] is None or info["optimum"] > 0
    assert all(math.isfinite(value) for value in _numbers(quick_results))


def test_quick_loss_gradient_rows(quick_results):
    rows = quick_results["groups"]["loss_gradient"]["rows"]
    assert {row["workload"] for row in rows} >= {"dense", "dense32", "sparse"}
    for row in rows:
        _positive(row, "time_loss_gradient", "time_products", "ratio")
        _positive(row, "ratio_public", "ratio_one_thread")
    assert {row["grad_dtype"] for row in rows if row["dtype"] == "float32"} == {
        "float32"
    }


def test_quick_lbfgs_vs_lr_rows(quick_results):
    rows = quick_results["groups"]["lbfgs_vs_lr"]["rows"]
    assert {(row["workload"], row["dtype"]) for row in rows} >= {
        ("dense", "float64"),
        ("dense", "float32"),
    }
    for row in rows:
        _positive(row, "time_ours", "time_lr", "ratio", "passes_ours", "passes_lr")
        _positive(row, "objective_ours", "objective_lr")
        # the same optimum: both at the same tolerance of the same objective
        assert abs(row["gap_between"]) < 1e-3, row


def test_quick_sgd_passes_rows(quick_results):
    rows = quick_results["groups"]["sgd_passes"]["rows"]
    assert [row["workload"] for row in rows] == ["digits", "dense", "wide"]
    for row in rows:
        _positive(row, "lbfgs_passes", "sgd_passes", "ratio")
        assert row["lbfgs_gap"] <= _bench.GAP_TARGET
        assert row["sgd_gap"] <= _bench.GAP_TARGET


def test_quick_defaults_row(quick_results):
    (row,) = quick_results["groups"]["defaults"]["rows"]
    _positive(row, "time_ours", "time_lr", "ratio")
    for key in ("accuracy_ours", "accuracy_lr"):
        assert 0 <= row[key] <= 1
    assert row["accuracy_diff_points"] == pytest.approx(
        100 * (row["accuracy_ours"] - row["accuracy_lr"])
    )


def test_quick_predict_rows(quick_results):
    rows = quick_results["groups"]["predict"]["rows"]
    assert {(row["workload"], row["method"]) for row in rows} == {
        (workload, method)
        for workload in ("digits", "dense", "dense32", "wide", "wide32", "sparse")
        for method in ("predict_proba", "predict_log_proba", "predict")
    }
    for row in rows:
        _positive(row, "time_ours", "time_lr", "ratio", "n_samples")
        # The two models sit at the same optimum: close probabilities,
        # nearly the same labels.
        if row["method"] == "predict":
            assert row["agreement"] >= 0.95, row
        elif row["method"] == "predict_proba":
            assert row["agreement"] < 0.05, row


def test_quick_stream_rows(quick_results):
    rows = quick_results["groups"]["stream"]["rows"]
    assert [row["n_classes"] for row in rows] == [2, 20]
    for row in rows:
        _positive(row, "time_ours", "time_sgd", "ratio", "first_ours", "first_sgd")
        _positive(row, "pass_ours", "pass_sgd")
        assert row["ratio"] == pytest.approx(row["time_ours"] / row["time_sgd"])
        assert row["passes"] >= 2 and row["calls"] >= 2 * row["passes"]
        for key in ("accuracy_ours", "accuracy_sgd", "accuracy_ours_1"):
            assert 0 <= row[key] <= 1
        # Both learn from the stream: above chance on the held-out rows.
        assert row["accuracy_ours"] > 1.2 / row["n_classes"], row
        assert row["accuracy_sgd"] > 1.2 / row["n_classes"], row


def test_hashed_chunks_look_like_hashed_text():
    # Unit rows of positive entries, a few columns frequent and most rare
    # (half the entries in the first eighth of the columns), labels of
    # every class that the frequent columns alone predict (the teacher's),
    # and held-out rows apart from the chunks.
    chunks, X_test, y_test = _bench.hashed_chunks(
        np.random.default_rng(0), 3, 400, 2**12, 30, 3
    )
    assert [X.shape for X, _ in chunks] == [(400, 2**12)] * 3
    X = sp.vstack([X for X, _ in chunks] + [X_test]).tocsr()
    assert X.format == "csr" and (X.data > 0).all()
    np.testing.assert_allclose(sp.linalg.norm(X, axis=1), 1.0)
    assert 20 <= np.diff(X.indptr).min() and np.diff(X.indptr).max() <= 30
    share = np.mean(X.indices < 2**12 // 8)
    assert 0.4 < share < 0.6
    y = np.concatenate([y for _, y in chunks] + [y_test])
    assert set(y) == {0, 1, 2}
    assert X_test.shape == (400, 2**12) and y_test.shape == (400,)
    from sklearn.linear_model import LogisticRegression

    frequent = X[:, : 2**12 // 64]
    model = LogisticRegression(C=100.0, max_iter=1000).fit(frequent[:1200], y[:1200])
    assert model.score(frequent[1200:], y[1200:]) > 0.6


def test_quick_epoch_vs_torch(quick_results):
    group = quick_results["groups"]["epoch_vs_torch"]
    if "skipped" in group:
        pytest.importorskip("torch")  # skipped only when torch is missing
    (row,) = group["rows"]
    _positive(row, "time_ours", "time_torch", "ratio", "ratio_torch_1thread")
    _positive(row, "time_floor", "floor_over_torch", "ours_over_floor")
    assert row["floor_over_torch"] == pytest.approx(
        row["time_floor"] / row["time_torch"]
    )
    assert row["objective_ours"] > 0 and row["objective_torch"] > 0


def test_quick_device_group(quick_results):
    group = quick_results["groups"]["device"]
    if "skipped" in group:
        # No torch, no such device, or dispatch off (pytest runs without
        # SCIPY_ARRAY_API): the reason says which.
        reason = group["skipped"]
        assert "torch" in reason or "SCIPY_ARRAY_API" in reason, reason
        assert group["rows"] == []
    else:
        assert group["rows"]


def test_device_group_on_cpu_tensors(tmp_path):
    # The device group's code, on torch's CPU (where no GPU is at hand):
    # a fresh interpreter, as dispatch needs SCIPY_ARRAY_API before scipy.
    pytest.importorskip("torch")
    output = tmp_path / "device.json"
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    command = [sys.executable, "-m", "sk_softmax", "bench", "--quick"]
    command += ["--only", "device", "--device", "cpu", "--output", str(output)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    group = json.loads(output.read_text())["groups"]["device"]
    if "skipped" in group:
        assert "SCIPY_ARRAY_API" in group["skipped"]  # scipy or numpy too old
        pytest.skip(group["skipped"])
    (row,) = group["rows"]
    assert row["device"] == "cpu" and row["workload"] == "dense32"
    _positive(row, "time_loss_gradient", "time_products", "ratio_loss_gradient")
    _positive(row, "time_lbfgs_device", "time_lbfgs_host", "time_lr")
    _positive(row, "time_epoch_ours", "time_epoch_torch", "ratio_epoch")
    # The same L-BFGS iterates there and here, to rounding.
    assert row["n_iter_device"] == row["n_iter_host"]
    assert abs(row["gap_device_host"]) < 1e-6
    assert abs(row["gap_device_lr"]) < 1e-3
    assert row["objective_epoch_ours"] > 0 and row["objective_epoch_torch"] > 0


def test_quick_peers_rows(quick_results):
    rows = quick_results["groups"]["peers"]["rows"]
    workloads = {row["workload"] for row in rows}
    assert workloads == {"digits", "dense", "wide", "sparse"}
    methods = {row["method"] for row in rows}
    expected = set(_bench.METHODS)
    if not _bench._torch_available():
        expected.discard("torch sgd")
    assert methods == expected
    torch_rows = [row for row in rows if row["method"] == "torch sgd"]
    assert {row["workload"] for row in torch_rows} <= {"digits", "dense", "wide"}
    for row in rows:
        _positive(row, "time", "passes", "X_mb")
        if row["method"] != "torch sgd":  # tracemalloc does not see torch
            _positive(row, "peak_mb")
        assert 0 <= row["accuracy"] <= 1
        if row["method"] == "SGDClassifier":
            assert row["gap"] is None
        else:
            assert row["gap"] > -1e-6, row
    exact = [row for row in rows if row["method"] == "ours lbfgs tol=1e-8"]
    assert all(row["gap"] < 1e-6 for row in exact)


def test_quick_curves(quick_results):
    curves = quick_results["groups"]["curves"]["curves"]
    assert curves
    for curve in curves:
        points = curve["points"]
        assert points
        assert [p["max_iter"] for p in points] == sorted(p["max_iter"] for p in points)
        for point in points:
            assert point["time"] > 0 and point["gap"] > -1e-6


# ------------------------------------------------------------- PyTorch peer


def test_torch_loop_minimizes_the_same_objective():
    # One full-batch step without momentum from the initial nn.Linear is a
    # gradient step on SoftmaxRegression's objective: mean cross-entropy
    # plus alpha/2 ||W||^2 (weight decay on the weights only).
    torch = pytest.importorskip("torch")
    from sk_softmax import loss_and_gradient

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    y = rng.integers(0, 3, size=40)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    alpha, rate = 0.1, 0.5
    torch.manual_seed(0)
    start = _bench.torch_sgd_epochs(X_t, y_t, 3, alpha=alpha, epochs=0)
    torch.manual_seed(0)
    step = _bench.torch_sgd_epochs(
        X_t,
        y_t,
        3,
        alpha=alpha,
        epochs=1,
        batch_size=40,
        learning_rate=rate,
        momentum=0.0,
    )
    with torch.no_grad():
        W0, b0 = start.weight.numpy(), start.bias.numpy()
        W1, b1 = step.weight.numpy(), step.bias.numpy()
    _, grad_W, grad_b = loss_and_gradient(W0, b0, X, y, alpha=alpha)
    np.testing.assert_allclose(W1, W0 - rate * grad_W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b1, b0 - rate * grad_b, rtol=1e-10, atol=1e-12)


def test_torch_sgd_is_a_classifier():
    pytest.importorskip("torch")
    from sklearn.base import clone

    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 4)).astype(np.float32)
    y = np.array(["a", "b", "c"])[np.argmax(X[:, :3], axis=1)]
    est = _bench.TorchSGD(alpha=1e-3, max_iter=20, learning_rate=0.1)
    assert clone(est).get_params()["max_iter"] == 20
    est.fit(X, y)
    assert est.n_iter_ == 20 and est.coef_.shape == (3, 4)
    assert est.coef_.dtype == np.float32
    assert set(est.predict(X)) <= {"a", "b", "c"}
    assert est.score(X, y) > 0.8


def test_short_sides_fill_later_samples_with_calls_back_to_back():
    # (Costs in powers of two: the fake clock adds them exactly.)
    clock, log = FakeClock(), []
    fns = {
        "a": clock.work(2.0**-7, log, "a"),
        "b": clock.work(2.0**-6, log, "b"),
        "c": clock.work(0.5, log, "c"),
    }
    stats, _ = _bench.time_alternating(
        fns, repeat=3, clock=clock, back_to_back_s=2.0**-4
    )
    # The first round calls each side once; then a's samples hold 8 calls,
    # b's 4, and c (longer than 1/16 s) stays at one.
    assert [stats[name]["number"] for name in "abc"] == [8, 4, 1]
    assert [log.count(name) for name in "abc"] == [1 + 2 * 8, 1 + 2 * 4, 3]
    assert stats["a"]["times"] == [2.0**-7] * 3
    assert stats["c"]["times"] == [0.5] * 3
    # Without it, every sample is one call.
    clock, log = FakeClock(), []
    fns = {name: clock.work(2.0**-7, log, name) for name in "ab"}
    stats, _ = _bench.time_alternating(fns, repeat=3, clock=clock)
    assert [stats[name]["number"] for name in "ab"] == [1, 1]
    assert len(log) == 6
