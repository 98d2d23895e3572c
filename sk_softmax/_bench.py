"""Benchmark suite behind ``python -m sk_softmax bench``.

Every timing comparison is a ratio of two wall times measured in this one
process on the same data, the two sides alternating (A B B A A B ...), so
the noise of a shared machine hits both sides alike.  The groups:

``loss_gradient``
    One :func:`sk_softmax.loss_and_gradient` evaluation (the unvalidated
    core, and the public function) against the two matrix products it
    needs, ``X @ W.T`` and ``G.T @ X``.
``lbfgs_vs_lr``
    ``SoftmaxRegression(solver="lbfgs")`` against
    ``LogisticRegression(solver="lbfgs")`` with the same objective
    (``C = 1 / (alpha n)``) and tolerance, float64 and float32 input.
``sgd_passes``
    Passes over the data that full-batch ``solver="sgd"`` and ``"lbfgs"``
    need to reach a 1e-6 relative objective gap.
``defaults``
    ``SoftmaxRegression()`` against ``LogisticRegression()``: test accuracy
    and wall time.
``predict``
    ``predict_proba``, ``predict_log_proba`` and ``predict`` of the L-BFGS
    model against those of ``LogisticRegression`` on the test rows.
``epoch_vs_torch``
    One mini-batch epoch (batch 256, momentum 0.9) against the same epoch in
    a PyTorch CPU loop, when torch is importable.
``stream``
    ``partial_fit`` on a stream of chunks of hashed-text-like sparse rows
    (``2**18`` features, the default of ``HashingVectorizer``), 2 and 20
    classes, against ``SGDClassifier(loss="log_loss").partial_fit`` on the
    same chunks, both at their defaults, three passes over them: the time
    of a call after the first, of the first, of a pass, and the test
    accuracy after the first pass and the last.
``peers``
    Each solver and peer on each workload (the PyTorch loop on the dense
    ones): wall time, passes, objective gap to the optimum, test accuracy,
    peak memory next to the size of X.
``curves``
    Objective gap against wall time, one fit per point (growing
    ``max_iter``), for the figure of the documentation.
``device``
    The same estimator on torch tensors on an accelerator (``--device``,
    CUDA by default), under ``array_api_dispatch=True``: one loss+gradient
    against the two products there, L-BFGS against the same fit on the
    host and ``LogisticRegression``, and one mini-batch epoch against the
    PyTorch loop on the same device.  Skipped, with the reason, without
    such a device or without ``SCIPY_ARRAY_API=1`` (which scikit-learn's
    dispatch needs before scipy is imported).

Workloads are generated on the fly from a seed: digits, dense 100k x 100
(10 classes, float64 and float32), wide 20k x 1000 (20 classes) and sparse
CSR 100k x 50k with density 0.001 (20 classes).  Synthetic labels come from
a random linear teacher, sampled from its softmax, with the teacher's scale
set so that the Bayes accuracy is about 0.87.  ``--quick`` uses small
versions of each (for CI: it asserts nothing about time).
"""

import argparse
import contextlib
import inspect
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin

GROUPS = (
    "loss_gradient",
    "lbfgs_vs_lr",
    "sgd_passes",
    "defaults",
    "predict",
    "epoch_vs_torch",
    "stream",
    "peers",
    "curves",
    "device",
)

# Targets of the design (docs: Performance).
TARGETS = {
    "loss_gradient": 1.2,
    "lbfgs_vs_lr_float64": 0.8,
    "lbfgs_vs_lr_float32": 0.5,
    "sgd_passes": 2.0,
    "defaults_time": 0.5,
    "defaults_accuracy_points": 0.5,
    "epoch_vs_torch": 0.5,
}

GAP_TARGET = 1e-6
BAYES_ACCURACY = 0.87


# ---------------------------------------------------------------- options


def bounded(kind, minimum):
    """An argparse ``type``: a finite ``kind`` (int or float) of at least ``minimum``.

    Examples
    --------
    >>> from sk_softmax._bench import bounded
    >>> bounded(int, 1)("3")
    3
    >>> bounded(float, 0.0)("-1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a finite number of at least 0.0, got -1
    """

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid {kind.__name__} value: {text!r}"
            ) from None
        if not math.isfinite(value) or value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be a finite number of at least {minimum}, got {text}"
            )
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def output_file(path):
    """An argparse ``type``: a file path that can be written.

    Checked when the options are read, not after minutes of work: the
    folder exists, and the file opens for writing (a file this check
    creates is removed again).
    """
    if not path:
        raise argparse.ArgumentTypeError("the file name is empty")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"{folder!r} is a file, not a folder")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{path!r} is a folder, not a file")
    existed = os.path.exists(path)
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"cannot write {path!r}: {exc.strerror}"
        ) from None
    if not existed:
        os.remove(path)
    return path


def group_names(value):
    """An argparse ``type``: comma-separated names of benchmark groups."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(
            "no group named; choose from " + ", ".join(GROUPS)
        )
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown group(s) {', '.join(unknown)}; choose from " + ", ".join(GROUPS)
        )
    return names


def add_arguments(parser):
    """Register the bench options on an argparse (sub)parser."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small versions of every workload (CI); asserts nothing about time",
    )
    parser.add_argument(
        "--output",
        default="bench-results.json",
        type=output_file,
        help="write the results as JSON here (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        action="append",
        type=group_names,
        default=None,
        metavar="GROUP[,GROUP]",
        help="run only these groups (repeatable, comma-separated): "
        + ", ".join(GROUPS),
    )
    parser.add_argument(
        "--repeat",
        type=bounded(int, 1),
        default=None,
        help="alternating repetitions per timing comparison (default 5; 2 with "
        "--quick)",
    )
    parser.add_argument(
        "--seed", type=bounded(int, 0), default=0, help="data seed (default 0)"
    )
    parser.add_argument(
        "--device",
        default="cuda",
        help="torch device of the 'device' group (default: %(default)s; "
        "'cpu' runs its code on the CPU)",
    )


def _selected_groups(only):
    """The groups to run, in their order: ``only`` holds lists of names."""
    if not only:
        return list(GROUPS)
    names = {name for names in only for name in names}
    return [name for name in GROUPS if name in names]


# ------------------------------------------------------------------ timing


def time_alternating(
    fns,
    *,
    repeat=5,
    budget_s=None,
    min_rounds=1,
    min_time_s=0.0,
    warmup=False,
    clock=time.perf_counter,
    contexts=None,
    settle_s=0.0,
    rewarm_below_s=0.0,
    back_to_back_s=0.0,
):
    """Time several functions in rounds, rotating their order each round.

    Round ``r`` calls the sides in the order of ``fns`` rotated by ``r``:
    with two sides that is A B, B A, A B, ...; with more, every side takes
    every position in turn, so a slow phase of the machine is shared out.

    Parameters
    ----------
    fns : dict of callable
        Side name to function, called without arguments.
    repeat : int, default=5
        Rounds (timed samples per side), at most.
    budget_s : float or None, default=None
        Stop adding rounds, once one is done, when the next would end past
        this many seconds.
    min_rounds : int, default=1
        Rounds run whatever ``budget_s`` says (at most ``repeat``): a
        comparison of long fits then rests on the median of several pairs,
        not on a single one.
    min_time_s : float, default=0.0
        Each sample calls its function ``number`` times in a row, with
        ``number`` chosen so a sample lasts at least this long (short
        functions).  A calibration call of each side, untimed, precedes.
    warmup : bool, default=False
        Call each side once, untimed, first (also done when
        ``min_time_s > 0``).
    clock : callable, default=time.perf_counter
        Seconds.
    contexts : dict of callable, default=None
        Side name to a callable returning a context manager entered around
        each sample of that side (e.g. a thread limit), outside the timing.
    settle_s : float, default=0.0
        Idle seconds before each sample, outside the timing: long enough
        for the thread pools a side leaves spinning (OpenBLAS, OpenMP) to
        fall asleep, so they do not slow the next side.
    rewarm_below_s : float, default=0.0
        After the pause (if any), a side whose previous sample took less
        than this many seconds per call is called once, untimed, right
        before the timed call.  On some virtual machines the first touch
        of memory left alone for a fraction of a second costs milliseconds
        (a digits fit paid 10 to 13 ms after 0.2 s, either side): a fixed
        cost that would otherwise decide the ratio of short fits.
    back_to_back_s : float, default=0.0
        A side whose first sample took less than this many seconds a call
        calls its function back to back in each later sample, as many times
        as last about this long (``number``; the first sample stays one
        call).  After a pause, even with the untimed call first, a float32
        digits L-BFGS fit of 6.5 ms took 9.0 to 9.6 ms, and
        ``LogisticRegression``'s 12 ms 13 to 18: in four comparisons of 15
        pairs of single fits their ratio was 0.53 to 0.69; in five of 15
        pairs of samples of 50 ms, 0.54 to 0.57.

    Returns
    -------
    stats : dict
        Per side: ``time`` (median seconds per call), ``best``, ``times``
        and ``number`` (calls per sample); and ``order`` (the sides called,
        one letter or name per sample) and ``rounds``.
    results : dict
        What the last call of each side returned.
    """
    names = list(fns)
    contexts = contexts or {}
    number = dict.fromkeys(names, 1)
    results = {}
    per_call = {}

    def sample(name, count):
        if settle_s > 0:
            time.sleep(settle_s)
        with (contexts.get(name) or contextlib.nullcontext)():
            if per_call.get(name, math.inf) < rewarm_below_s:
                fns[name]()
            start = clock()
            for _ in range(count):
                results[name] = fns[name]()
            elapsed = clock() - start
        per_call[name] = elapsed / count
        return elapsed

    if warmup or min_time_s > 0:
        for name in names:
            elapsed = sample(name, 1)
            if min_time_s > 0 and elapsed < min_time_s:
                number[name] = max(1, math.ceil(min_time_s / max(elapsed, 1e-9)))
    times = {name: [] for name in names}
    order = []
    begin = clock()
    rounds = 0
    for index in range(max(1, repeat)):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(sample(name, number[name]) / number[name])
            order.append(name)
            if index == 0 and per_call[name] < back_to_back_s:
                filled = math.ceil(back_to_back_s / max(per_call[name], 1e-9))
                number[name] = max(number[name], filled)
        rounds += 1
        if budget_s is not None and rounds >= min_rounds and index + 1 < repeat:
            spent = clock() - begin
            if spent + spent / rounds > budget_s:
                break
    stats = {
        name: {
            "time": statistics.median(times[name]),
            "best": min(times[name]),
            "times": times[name],
            "number": number[name],
        }
        for name in names
    }
    stats["order"] = order
    stats["rounds"] = rounds
    return stats, results


def _ratio(numerator, denominator):
    return numerator / denominator if denominator > 0 else math.inf


def compare(
    fn_a,
    fn_b,
    *,
    repeat=5,
    budget_s=None,
    min_rounds=1,
    min_time_s=0.0,
    warmup=False,
    clock=time.perf_counter,
    context_a=None,
    context_b=None,
    settle_s=0.0,
    rewarm_below_s=0.0,
    back_to_back_s=0.0,
):
    """Time ``fn_a`` against ``fn_b``, alternating A B B A A B ...

    See :func:`time_alternating` for the parameters.

    Returns
    -------
    stats : dict
        ``time_a`` and ``time_b`` (medians, seconds per call), ``ratio``
        (``time_a / time_b``), ``ratio_best`` (of the minima), the samples
        ``times_a`` and ``times_b``, the ``order`` of the calls, ``number``
        (calls per sample, per side) and ``pairs``.
    result_a, result_b :
        What the last calls of ``fn_a`` and ``fn_b`` returned.
    """
    stats, results = time_alternating(
        {"a": fn_a, "b": fn_b},
        repeat=repeat,
        budget_s=budget_s,
        min_rounds=min_rounds,
        min_time_s=min_time_s,
        warmup=warmup,
        clock=clock,
        contexts={"a": context_a, "b": context_b},
        settle_s=settle_s,
        rewarm_below_s=rewarm_below_s,
        back_to_back_s=back_to_back_s,
    )
    return _pair_summary(stats, "a", "b"), results["a"], results["b"]


def _pair_summary(stats, name_a, name_b):
    """:func:`compare`'s summary of two sides of :func:`time_alternating`."""
    a, b = stats[name_a], stats[name_b]
    return {
        "time_a": a["time"],
        "time_b": b["time"],
        "ratio": _ratio(a["time"], b["time"]),
        "ratio_best": _ratio(a["best"], b["best"]),
        "times_a": a["times"],
        "times_b": b["times"],
        "order": "".join(stats["order"]),
        "number": [a["number"], b["number"]],
        "pairs": stats["rounds"],
    }


def peak_memory(fn):
    """``(result, peak_bytes)``: the tracemalloc peak while ``fn()`` runs."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return result, max(peak - base, 0)


class _MinimizeCounter:
    """Counts the function evaluations of every ``scipy.optimize.minimize`` call.

    scikit-learn's LogisticRegression and MLPClassifier (lbfgs) call
    ``scipy.optimize.minimize`` through the module attribute; wrapping it
    reads their ``nfev`` (passes over the data), which they do not expose.
    """

    def __init__(self):
        self.nfev = 0
        self.calls = 0

    def __enter__(self):
        self._original = original = scipy.optimize.minimize

        def minimize(*args, **kwargs):
            result = original(*args, **kwargs)
            self.nfev += int(getattr(result, "nfev", 0) or 0)
            self.calls += 1
            return result

        scipy.optimize.minimize = minimize
        return self

    def __exit__(self, *exc):
        scipy.optimize.minimize = self._original
        return False


# ---------------------------------------------------------------- workloads


@dataclass
class Workload:
    """Train/test data with the regularization every solver is given."""

    name: str
    X_train: object
    y_train: np.ndarray
    X_test: object
    y_test: np.ndarray
    n_classes: int
    alpha: float
    description: str
    bayes_accuracy: float | None = None
    # float64 training data, for objective values (the gap needs float64).
    X_train64: object = None
    # epochs allowed to mini-batch solvers in ``peers`` (None: their default)
    epoch_cap: int | None = None
    ref_tol: float = 1e-10
    optimum: float | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.X_train64 is None:
            self.X_train64 = self.X_train

    @property
    def dtype(self):
        return np.dtype(self.X_train.dtype).name

    @property
    def n_train(self):
        return self.X_train.shape[0]

    def as_float32(self):
        """The same problem with float32 X (objectives still in float64)."""
        return Workload(
            name=self.name,
            X_train=self.X_train.astype(np.float32),
            y_train=self.y_train,
            X_test=self.X_test.astype(np.float32),
            y_test=self.y_test,
            n_classes=self.n_classes,
            alpha=self.alpha,
            description=self.description,
            bayes_accuracy=self.bayes_accuracy,
            X_train64=self.X_train64,
            epoch_cap=self.epoch_cap,
            ref_tol=self.ref_tol,
            extra=self.extra,
        )

    def info(self):
        X = self.X_train
        return {
            "name": self.name,
            "description": self.description,
            "n_train": int(X.shape[0]),
            "n_test": int(self.X_test.shape[0]),
            "n_features": int(X.shape[1]),
            "n_classes": int(self.n_classes),
            "dtype": self.dtype,
            "sparse": bool(sp.issparse(X)),
            "nnz": int(X.nnz) if sp.issparse(X) else None,
            "X_nbytes": int(_nbytes(X)),
            "alpha": self.alpha,
            "bayes_accuracy": self.bayes_accuracy,
            "epoch_cap": self.epoch_cap,
        }


def _nbytes(X):
    if sp.issparse(X):
        return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    return X.nbytes


def random_csr(rng, n_samples, n_features, density):
    """CSR with ``round(density * n_features)`` standard normal entries a row."""
    per_row = max(1, int(round(density * n_features)))
    columns = rng.integers(0, n_features, size=(n_samples, per_row))
    columns.sort(axis=1)
    indptr = np.arange(0, n_samples * per_row + 1, per_row)
    X = sp.csr_matrix(
        (rng.standard_normal(n_samples * per_row), columns.ravel(), indptr),
        shape=(n_samples, n_features),
    )
    X.sum_duplicates()
    return X


def hashed_chunks(rng, n_chunks, rows, n_features, per_row, n_classes):
    """A stream of CSR chunks like hashed text, and held-out rows.

    Each row stores up to ``per_row`` positive entries (a document's hashed
    terms, fewer where a term repeats) at columns drawn as words are, a few
    often and most rarely (column ``n_features * u**3`` for ``u`` uniform),
    scaled to unit norm as TF-IDF rows are; labels come from a random
    linear teacher (see :func:`teacher_labels`) on the most frequent 1/64
    of the columns (a quarter of the entries), which a pass over the stream
    sees often enough to learn: over all of them, the rare ones, seen a few
    times at most, held most of the signal, and both estimators stayed
    near chance after one pass.
    Returns ``(chunks, X_test, y_test)``: ``n_chunks`` pairs ``(X, y)`` of
    ``rows`` rows each, then ``rows`` more rows held out.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._bench import hashed_chunks
    >>> chunks, X_test, y_test = hashed_chunks(
    ...     np.random.default_rng(0), 3, 50, 2**10, 8, 2
    ... )
    >>> len(chunks), chunks[0][0].shape, X_test.shape, sorted(set(y_test.tolist()))
    (3, (50, 1024), (50, 1024), [0, 1])
    """
    from sklearn.preprocessing import normalize

    n_rows = (n_chunks + 1) * rows
    columns = (n_features * rng.random((n_rows, per_row)) ** 3).astype(np.int64)
    columns.sort(axis=1)
    X = sp.csr_matrix(
        (
            rng.random(n_rows * per_row),
            columns.ravel(),
            np.arange(0, columns.size + 1, per_row),
        ),
        shape=(n_rows, n_features),
    )
    X.sum_duplicates()
    X = normalize(X)
    y, _ = teacher_labels(rng, X[:, : max(1, n_features // 64)], n_classes)
    chunks = [
        (X[start : start + rows], y[start : start + rows])
        for start in range(0, n_chunks * rows, rows)
    ]
    return chunks, X[n_chunks * rows :], y[n_chunks * rows :]


def epoch_floor(X, n_classes, batch_size, seed=0):
    """What any mini-batch epoch over X must do: gather and two products.

    For each batch of a random permutation: the rows ``X[batch]``, the
    forward product with a (n_features, n_classes) ``W^T`` and the backward
    product ``G^T X[batch]``; no softmax, no update.  Its time is a floor for
    the epoch of any loop built on numpy's BLAS.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._bench import epoch_floor
    >>> epoch_floor(np.ones((10, 3)), n_classes=2, batch_size=4)
    3
    """
    order = np.random.default_rng(seed).permutation(X.shape[0])
    coef_t = np.zeros((X.shape[1], n_classes), dtype=X.dtype)
    n_batches = 0
    for start in range(0, X.shape[0], batch_size):
        X_batch = X[order[start : start + batch_size]]
        raw = X_batch @ coef_t
        raw.T @ X_batch
        n_batches += 1
    return n_batches


def teacher_labels(rng, X, n_classes, bayes_accuracy=BAYES_ACCURACY):
    """Labels sampled from the softmax of a random linear teacher.

    The teacher ``W`` has standard normal entries times a scale found by
    bisection on a subsample so that the Bayes accuracy ``E[max_k p_k(x)]``
    is ``bayes_accuracy``.  Returns ``(y, bayes_accuracy_estimate)``.
    """
    from ._loss import softmax

    W = rng.standard_normal((n_classes, X.shape[1]))
    logits = np.asarray(X @ W.T)
    sub = logits[: min(4000, logits.shape[0])]

    def bayes(scale):
        return float(softmax(scale * sub, copy=False).max(axis=1).mean())

    low, high = -8.0, 4.0  # log10 of the scale
    for _ in range(40):
        middle = 0.5 * (low + high)
        if bayes(10.0**middle) < bayes_accuracy:
            low = middle
        else:
            high = middle
    scale = 10.0 ** (0.5 * (low + high))
    estimate = bayes(scale)
    logits *= scale
    logits += rng.gumbel(size=logits.shape)  # Gumbel-max: a softmax sample
    return logits.argmax(axis=1).astype(np.intp), estimate


# Sizes: (n_train, n_features, n_classes, density) of the synthetic workloads.
FULL_SIZES = {
    "dense": (100_000, 100, 10, None),
    "wide": (20_000, 1000, 20, None),
    "sparse": (100_000, 50_000, 20, 0.001),
}
QUICK_SIZES = {
    "dense": (5_000, 20, 10, None),
    "wide": (1_500, 150, 20, None),
    "sparse": (3_000, 1_500, 20, 0.01),
}


def make_workloads(quick=False, seed=0):
    """The benchmark problems, keyed by name (``dense32`` is ``dense`` in float32)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    workloads = {}
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=seed, stratify=y
    )
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std[std == 0] = 1.0
    X_train = np.ascontiguousarray((X_train - mean) / std)
    X_test = np.ascontiguousarray((X_test - mean) / std)
    workloads["digits"] = Workload(
        "digits",
        X_train,
        y_train.astype(np.intp),
        X_test,
        y_test.astype(np.intp),
        n_classes=10,
        alpha=1.0 / X_train.shape[0],
        description="load_digits, standardized, 80/20 split",
        epoch_cap=10 if quick else None,
    )
    sizes = QUICK_SIZES if quick else FULL_SIZES
    for index, (name, (n, d, k, density)) in enumerate(sizes.items()):
        rng = np.random.default_rng([seed, index])
        n_test = n // 5
        if density is None:
            X = rng.standard_normal((n + n_test, d))
            kind = "dense N(0, 1)"
        else:
            X = random_csr(rng, n + n_test, d, density)
            kind = f"CSR density {density}"
        y, bayes = teacher_labels(rng, X, k)
        alpha = 1.0 / n
        epoch_cap = 10 if quick else 30
        ref_tol = 1e-10
        if density is not None:
            # 50k features: a stronger penalty keeps L-BFGS at tens of
            # iterations; dense mini-batch steps on 20 x 50k weights cost
            # seconds an epoch, hence one epoch in the peers table.
            alpha = 10.0 / n
            if not quick:
                epoch_cap, ref_tol = 1, 1e-8
        workloads[name] = Workload(
            name,
            X[:n],
            y[:n],
            X[n:],
            y[n:],
            n_classes=k,
            alpha=alpha,
            description=f"{n} x {d}, {k} classes, {kind}, linear teacher",
            bayes_accuracy=bayes,
            epoch_cap=epoch_cap,
            ref_tol=ref_tol,
        )
    for name in ("digits", "dense", "wide", "sparse"):
        workloads[name + "32"] = workloads[name].as_float32()
    return workloads


# ---------------------------------------------------------------- estimators


def model_coef(model):
    """``(coef (K, d), intercept (K,))`` of a fitted multinomial model, or None."""
    if hasattr(model, "coefs_"):  # MLPClassifier(hidden_layer_sizes=())
        return model.coefs_[0].T, model.intercepts_[0]
    if type(model).__name__ == "SGDClassifier":
        return None  # one-vs-rest: not the softmax objective
    return model.coef_, model.intercept_


def objective(workload, model):
    """``J`` of a fitted model on the float64 training data, or None."""
    from . import loss_and_gradient
    from ._compat import host_array

    params = model_coef(model)
    if params is None:
        return None
    # (The arrays of a model fitted on a device are there too.)
    coef, intercept = (host_array(a).astype(np.float64) for a in params)
    loss = loss_and_gradient(
        coef,
        intercept,
        workload.X_train64,
        workload.y_train,
        alpha=workload.alpha,
    )[0]
    return float(loss)


def relative_gap(value, optimum):
    if value is None or optimum is None:
        return None
    return (value - optimum) / abs(optimum)


METHODS = (
    "ours lbfgs",
    "ours lbfgs tol=1e-8",
    "ours sgd",
    "ours sgd full batch",
    "ours adam",
    "LR lbfgs",
    "LR lbfgs tol=1e-8",
    "MLP adam",
    "MLP lbfgs",
    "SGDClassifier",
    # The PyTorch loop of epoch_vs_torch (EPOCH_BATCH, EPOCH_MOMENTUM,
    # EPOCH_LEARNING_RATE), on dense workloads when torch is importable.
    "torch sgd",
)


# The mini-batch setting of epoch_vs_torch and of the PyTorch peer.
EPOCH_BATCH = 256
EPOCH_LEARNING_RATE = 0.01
EPOCH_MOMENTUM = 0.9


def torch_sgd_epochs(
    X_t,
    y_t,
    n_classes,
    *,
    alpha,
    epochs,
    batch_size=EPOCH_BATCH,
    learning_rate=EPOCH_LEARNING_RATE,
    momentum=EPOCH_MOMENTUM,
    generator=None,
):
    """The PyTorch loop a user would write; returns the trained ``nn.Linear``.

    ``nn.Linear`` and ``nn.CrossEntropyLoss`` (the mean over the batch), and
    ``torch.optim.SGD`` with momentum and ``weight_decay=alpha`` on the
    weights only: the same objective as ``SoftmaxRegression(alpha=alpha)``.
    Each epoch draws a permutation and indexes the batches out of ``X_t``,
    on its device (``generator`` must be on that device too).
    """
    import torch

    model = torch.nn.Linear(X_t.shape[1], n_classes, dtype=X_t.dtype, device=X_t.device)
    optimizer = torch.optim.SGD(
        [
            {"params": [model.weight], "weight_decay": alpha},
            {"params": [model.bias], "weight_decay": 0.0},
        ],
        lr=learning_rate,
        momentum=momentum,
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(X_t.shape[0], generator=generator, device=X_t.device)
        for start in range(0, X_t.shape[0], batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(X_t[index]), y_t[index])
            loss.backward()
            optimizer.step()
    return model


def epoch_estimator(alpha, seed):
    """``SoftmaxRegression`` for one epoch of the PyTorch loop's SGD.

    Batch ``EPOCH_BATCH``, heavy-ball momentum ``EPOCH_MOMENTUM`` and step
    ``EPOCH_LEARNING_RATE``, as in :func:`torch_sgd_epochs`.
    """
    from . import SoftmaxRegression

    return SoftmaxRegression(
        solver="sgd",
        batch_size=EPOCH_BATCH,
        max_iter=1,
        momentum=EPOCH_MOMENTUM,
        nesterovs_momentum=False,
        learning_rate_init=EPOCH_LEARNING_RATE,
        alpha=alpha,
        random_state=seed,
    )


class TorchSGD(ClassifierMixin, BaseEstimator):
    """:func:`torch_sgd_epochs` as a scikit-learn classifier, for the peers.

    ``max_iter`` epochs, always (a plain loop has no stopping rule); dense
    X in its own dtype.  The fitted ``coef_`` and ``intercept_`` are those of
    the ``nn.Linear``.
    """

    def __init__(
        self,
        alpha=0.0,
        batch_size=EPOCH_BATCH,
        learning_rate=EPOCH_LEARNING_RATE,
        momentum=EPOCH_MOMENTUM,
        max_iter=200,
        random_state=0,
    ):
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y):
        import torch

        self.classes_, y_index = np.unique(y, return_inverse=True)
        torch.manual_seed(self.random_state)
        model = torch_sgd_epochs(
            torch.from_numpy(np.ascontiguousarray(X)),
            torch.from_numpy(y_index.astype(np.int64)),
            self.classes_.size,
            alpha=self.alpha,
            epochs=self.max_iter,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            momentum=self.momentum,
            generator=torch.Generator().manual_seed(self.random_state),
        )
        with torch.no_grad():
            self.coef_ = model.weight.numpy().copy()
            self.intercept_ = model.bias.numpy().copy()
        self.n_iter_ = self.max_iter
        return self

    def predict(self, X):
        return self.classes_[np.argmax(X @ self.coef_.T + self.intercept_, axis=1)]


def _torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _ran_mini_batches(model, workload):
    """Whether the fitted SoftmaxRegression ``model`` stepped on mini-batches."""
    rows = getattr(model, "_batch_size_used", None)
    if rows is None:  # (versions before it recorded its batch size)
        from ._softmax import _density

        X = workload.X_train
        return model._mini_batches(
            X.shape[0], X.shape[1], partial=False, density=_density(X)
        )
    return rows < workload.n_train


def make_estimator(method, workload, seed=0, max_iter=None):
    """A fresh estimator for ``method`` minimizing ``workload``'s objective.

    ``max_iter`` (if given) overrides the iteration / epoch limit.
    """
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.neural_network import MLPClassifier

    from . import SoftmaxRegression

    alpha, n = workload.alpha, workload.n_train
    cap = workload.epoch_cap
    if method.startswith("ours"):
        if method.startswith("ours lbfgs"):
            tol = 1e-8 if method.endswith("1e-8") else 1e-4
            est = SoftmaxRegression(solver="lbfgs", alpha=alpha, tol=tol, max_iter=1000)
        elif method == "ours sgd":
            # The defaults as they are: the full batch on these workloads
            # (no strongly correlated features), whose passes are not capped.
            est = SoftmaxRegression(alpha=alpha, random_state=seed)
        elif method == "ours sgd full batch":
            est = SoftmaxRegression(
                solver="sgd", batch_size=None, alpha=alpha, max_iter=1000
            )
        elif method == "ours adam":
            est = SoftmaxRegression(solver="adam", alpha=alpha, random_state=seed)
            if cap is not None:
                est.set_params(max_iter=cap)
        else:
            raise ValueError(method)
    elif method.startswith("LR"):
        tol = 1e-8 if method.endswith("1e-8") else 1e-4
        est = LogisticRegression(C=1.0 / (alpha * n), tol=tol, max_iter=1000)
    elif method == "MLP adam":
        # MLP's penalty is alpha_mlp / (2 * batch) ||W||^2 on each batch.
        batch = min(200, n)
        est = MLPClassifier(
            hidden_layer_sizes=(), alpha=alpha * batch, random_state=seed
        )
        if cap is not None:
            est.set_params(max_iter=cap)
    elif method == "MLP lbfgs":
        est = MLPClassifier(
            hidden_layer_sizes=(),
            solver="lbfgs",
            alpha=alpha * n,
            max_iter=1000,
            random_state=seed,
        )
    elif method == "SGDClassifier":
        est = SGDClassifier(loss="log_loss", alpha=alpha, random_state=seed)
        if cap is not None:
            est.set_params(max_iter=cap)
    elif method == "torch sgd":
        est = TorchSGD(alpha=alpha, random_state=seed)
        if cap is not None:
            est.set_params(max_iter=cap)
    else:
        raise ValueError(f"unknown method {method!r}")
    if max_iter is not None:
        est.set_params(max_iter=max_iter)
    return est


def _passes(model, counter):
    """Passes over the data: function evaluations (L-BFGS) or epochs."""
    if hasattr(model, "n_passes_"):
        return int(model.n_passes_)
    solver = getattr(model, "solver", None)
    if solver == "lbfgs" and counter is not None and counter.nfev:
        return int(counter.nfev)
    n_iter = np.max(np.atleast_1d(model.n_iter_))
    return int(n_iter)


def _fit_counted(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _MinimizeCounter() as counter:
            est.fit(X, y)
    return est, _passes(est, counter)


def _finite(value):
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    return value


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(key): _jsonable(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(value) for value in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


# ---------------------------------------------------------------- printing


def _format(value, spec):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, str):
        return value
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def print_table(title, rows, columns, file=None):
    """Print ``rows`` (dicts) under ``title``.

    ``columns`` holds ``(key, header, format_spec)`` or ``(key, header,
    format_spec, scale)`` tuples; missing values print as ``-``.
    """
    file = sys.stdout if file is None else file
    cells = []
    for row in rows:
        line = []
        for key, _, spec, *scale in columns:
            value = row.get(key)
            if scale and isinstance(value, int | float) and not isinstance(value, bool):
                value = value * scale[0]
            line.append(_format(value, spec))
        cells.append(line)
    headers = [column[1] for column in columns]
    widths = [
        max([len(header)] + [len(line[i]) for line in cells])
        for i, header in enumerate(headers)
    ]
    print(f"\n== {title}", file=file)
    line = "  ".join(
        h.rjust(w) if i else h.ljust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    print(line, file=file)
    print("-" * len(line), file=file)
    for row in cells:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ),
            file=file,
        )
    file.flush()


def _git_commit():
    """``git describe --always --dirty`` of the source tree, or None."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def blas_info():
    """threadpoolctl's view of the loaded BLAS and OpenMP pools."""
    from threadpoolctl import threadpool_info

    return [dict(entry) for entry in threadpool_info()]


def _numpy_blas_threads(info):
    for entry in info:
        if entry.get("user_api") == "blas" and "numpy" in entry.get("filepath", ""):
            return int(entry["num_threads"])
    for entry in info:
        if entry.get("user_api") == "blas":
            return int(entry["num_threads"])
    return os.cpu_count() or 1


# ---------------------------------------------------------------- the bench


class Bench:
    """Runs the selected groups on the workloads; collects rows for JSON."""

    def __init__(
        self, *, quick=False, repeat=None, seed=0, groups=GROUPS, device="cuda"
    ):
        self.quick = quick
        self.device = device
        self.repeat = repeat if repeat is not None else (2 if quick else 5)
        self.seed = seed
        self.groups = list(groups)
        self.budget_s = 1.0 if quick else 10.0
        # The fits compared against a target run at least this many pairs,
        # whatever the budget: one pair of 10 s fits (sparse L-BFGS) gave
        # 0.69, 0.84 and 1.16 on the same code.
        self.min_rounds = 1 if quick else 3
        # ...and at most this many, as the budget allows: short fits are
        # the noisiest (five pairs of digits L-BFGS fits of about 10 ms gave
        # 0.92 where 21 pairs gave 0.69 and 0.70; single fits took 9 to
        # 46 ms), and fifteen pairs of them take a few seconds.
        self.fit_repeat = self.repeat if quick else 3 * self.repeat
        self.min_time_s = 0.01 if quick else 0.1
        # Idle time before each timed fit: the thread pools the other side
        # left spinning fall asleep first (OpenBLAS's after about 0.1 s).
        self.settle_s = 0.0 if quick else 0.2
        # ... after which a fit shorter than this is called once, untimed,
        # right before its timed call (see time_alternating).
        self.rewarm_below_s = 0.0 if quick else 0.25
        # ... and one shorter than this fills each later sample with calls
        # back to back, about this long (see time_alternating).
        self.back_to_back_s = 0.0 if quick else 0.05
        self.fits = {}
        self.notes = []
        self.results = {}
        self.workloads = {}

    # -- helpers ---------------------------------------------------------

    def note(self, text):
        self.notes.append(text)
        print(f"note: {text}")

    def optimum(self, workload):
        """Reference ``J*``: float64 L-BFGS at ``workload.ref_tol``, cached."""
        base = self.workloads[workload.name]
        if base.optimum is None:
            from . import SoftmaxRegression

            est = SoftmaxRegression(
                solver="lbfgs", alpha=base.alpha, tol=base.ref_tol, max_iter=10_000
            )
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(base.X_train, base.y_train)
            elapsed = time.perf_counter() - start
            base.optimum = objective(base, est)
            base.extra["reference_fit"] = est
            base.extra["reference_time"] = elapsed
            if base.ref_tol == 1e-8:
                # The same fit as the peers' "ours lbfgs tol=1e-8" row.
                self._store_fit(base, "ours lbfgs tol=1e-8", est, [elapsed], None)
        workload.optimum = base.optimum
        return base.optimum

    def _store_fit(self, workload, method, model, times, passes):
        if passes is None:
            passes = _passes(model, None)
        record = {
            "time": statistics.median(times),
            "times": list(times),
            "model": model,
            "passes": passes,
            "n_iter": int(np.max(np.atleast_1d(model.n_iter_))),
        }
        self.fits[workload.name, workload.dtype, method] = record
        return record

    def fit_once(self, workload, method):
        """Fit ``method`` once (or reuse an earlier fit); the record."""
        key = (workload.name, workload.dtype, method)
        if key not in self.fits:
            est = make_estimator(method, workload, self.seed)
            start = time.perf_counter()
            est, passes = _fit_counted(est, workload.X_train, workload.y_train)
            elapsed = time.perf_counter() - start
            self._store_fit(workload, method, est, [elapsed], passes)
        return self.fits[key]

    def compare_fits(self, workload, method_a, method_b, *, budget_s=None):
        """Alternating fits of two methods; stores both in the fit cache."""
        passes = {}

        def runner(method):
            def fit():
                est = make_estimator(method, workload, self.seed)
                est, passes[method] = _fit_counted(
                    est, workload.X_train, workload.y_train
                )
                return est

            return fit

        stats, model_a, model_b = compare(
            runner(method_a),
            runner(method_b),
            repeat=self.fit_repeat,
            budget_s=self.budget_s if budget_s is None else budget_s,
            min_rounds=self.min_rounds,
            settle_s=self.settle_s,
            rewarm_below_s=self.rewarm_below_s,
            back_to_back_s=self.back_to_back_s,
        )
        self._store_fit(workload, method_a, model_a, stats["times_a"], passes[method_a])
        self._store_fit(workload, method_b, model_b, stats["times_b"], passes[method_b])
        return stats, model_a, model_b

    # -- groups ----------------------------------------------------------

    def run(self):
        info = blas_info()
        self.results["meta"] = self._meta(info)
        self._print_meta(info)
        start = time.perf_counter()
        self.workloads = make_workloads(self.quick, self.seed)
        self.results["workloads"] = {
            name: wl.info() for name, wl in self.workloads.items()
        }
        print(
            f"\nworkloads generated in {time.perf_counter() - start:.1f} s: "
            + "; ".join(
                f"{name} {wl.description}"
                + (
                    f" (Bayes accuracy {wl.bayes_accuracy:.3f})"
                    if wl.bayes_accuracy
                    else ""
                )
                for name, wl in self.workloads.items()
                if not name.endswith("32")
            )
        )
        self.results["groups"] = {}
        timings = {}
        for group in self.groups:
            group_start = time.perf_counter()
            result = getattr(self, "group_" + group)()
            timings[group] = time.perf_counter() - group_start
            self.results["groups"][group] = result
        for name, wl in self.workloads.items():
            self.results["workloads"][name]["optimum"] = wl.optimum
        self.results["meta"]["group_seconds"] = timings
        self.results["meta"]["total_seconds"] = time.perf_counter() - start
        self.results["notes"] = self.notes
        print(
            "\ngroup times: "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
            + f"; total {self.results['meta']['total_seconds']:.1f} s"
        )
        return self.results

    def _meta(self, info):
        import sklearn

        from . import __version__

        return {
            "sk_softmax": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "sklearn": sklearn.__version__,
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "quick": self.quick,
            "repeat": self.repeat,
            "fit_repeat": self.fit_repeat,
            "seed": self.seed,
            "groups": self.groups,
            "threadpool_info": info,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "git_commit": _git_commit(),
        }

    def _print_meta(self, info):
        meta = self.results["meta"]
        print(
            f"sk_softmax {meta['sk_softmax']}, numpy {meta['numpy']}, scipy "
            f"{meta['scipy']}, scikit-learn {meta['sklearn']}, Python "
            f"{meta['python']}, {meta['cpu_count']} CPUs, {meta['platform']}"
        )
        print("threadpoolctl.threadpool_info():")
        for entry in info:
            print(
                f"  {entry.get('user_api')}: {entry.get('internal_api')} "
                f"{entry.get('version')} {entry.get('architecture') or ''} "
                f"num_threads={entry.get('num_threads')} "
                f"{os.path.basename(entry.get('filepath', ''))}"
            )
        mode = "quick" if self.quick else "full"
        print(
            f"mode: {mode}; groups: {', '.join(self.groups)}; source: "
            f"{meta['git_commit']}"
        )

    def group_loss_gradient(self):
        """(a) one loss+gradient against the two products it needs."""
        from . import _loss, loss_and_gradient
        from ._loss import _loss_and_gradient

        # How fit calls the core: every BLAS at one thread, the core splitting
        # its rows over the thread budget (when this version does so).
        limiter = getattr(_loss, "single_threaded_blas", None)
        core_threads = None
        if (
            limiter is not None
            and "n_threads" in inspect.signature(_loss_and_gradient).parameters
        ):
            with limiter() as core_threads:
                pass
        rows = []
        names = ["digits", "dense", "dense32", "wide", "wide32", "sparse"]
        for name in names:
            wl = self.workloads[name]
            X, y = wl.X_train, wl.y_train
            n, d = X.shape
            dtype = X.dtype
            rng = np.random.default_rng(self.seed)
            coef = (0.01 * rng.standard_normal((wl.n_classes, d))).astype(dtype)
            intercept = np.zeros(wl.n_classes, dtype=dtype)
            G = rng.random((n, wl.n_classes)).astype(dtype)

            if sp.issparse(X):

                def products(X=X, coef=coef, G=G):
                    return X @ coef.T, X.T @ G

            else:

                def products(X=X, coef=coef, G=G):
                    return X @ coef.T, G.T @ X

            def internal(X=X, y=y, coef=coef, intercept=intercept, n=n, wl=wl):
                return _loss_and_gradient(coef, intercept, X, y, 1.0 / n, wl.alpha, 0.0)

            def in_fit(X=X, y=y, coef=coef, intercept=intercept, n=n, wl=wl):
                return _loss_and_gradient(
                    coef,
                    intercept,
                    X,
                    y,
                    1.0 / n,
                    wl.alpha,
                    0.0,
                    n_threads=core_threads,
                )

            def public(X=X, y=y, coef=coef, intercept=intercept, wl=wl):
                return loss_and_gradient(coef, intercept, X, y, alpha=wl.alpha)

            # One rotation of all sides: the core as fit calls it, the core
            # on one thread (BLAS included), the public function, and the two
            # products with numpy's BLAS pool as it is and at one thread; the
            # floor is the faster of the last two.
            fns = {"products": products, "core": internal, "public": public}
            contexts = {}
            if limiter is not None:
                fns["products_1thread"] = products
                contexts["products_1thread"] = limiter
                contexts["core"] = limiter
            if core_threads is not None:
                fns["in_fit"] = in_fit
                contexts["in_fit"] = limiter
            stats, results = time_alternating(
                fns,
                repeat=self.repeat,
                min_time_s=self.min_time_s,
                budget_s=self.budget_s,
                contexts=contexts,
            )
            floor_name = "products"
            if "products_1thread" in stats and (
                stats["products_1thread"]["time"] < stats["products"]["time"]
            ):
                floor_name = "products_1thread"
            floor = stats[floor_name]["time"]
            main_name = "in_fit" if core_threads is not None else "core"
            main = stats[main_name]
            rows.append(
                {
                    "workload": name,
                    "dtype": wl.dtype,
                    "sparse": bool(sp.issparse(X)),
                    "shape": f"{n}x{d}x{wl.n_classes}",
                    "time_loss_gradient": main["time"],
                    "time_products": floor,
                    "products_blas": "1 thread"
                    if floor_name == "products_1thread"
                    else "default",
                    "time_products_default": stats["products"]["time"],
                    "time_products_1thread": stats.get("products_1thread", {}).get(
                        "time"
                    ),
                    "ratio": _ratio(main["time"], floor),
                    "ratio_best": _ratio(main["best"], stats[floor_name]["best"]),
                    "time_one_thread": stats["core"]["time"],
                    "ratio_one_thread": _ratio(stats["core"]["time"], floor),
                    "time_public": stats["public"]["time"],
                    "ratio_public": _ratio(stats["public"]["time"], floor),
                    "core_threads": core_threads,
                    "rounds": stats["rounds"],
                    "calls_per_sample": {k: stats[k]["number"] for k in fns},
                    "grad_dtype": np.asarray(results[main_name][1]).dtype.name,
                    "target": TARGETS["loss_gradient"],
                    "met": _ratio(main["time"], floor) <= TARGETS["loss_gradient"],
                }
            )
        print_table(
            "loss_gradient: one loss_and_gradient vs X @ W.T + G.T @ X, "
            "ratio of medians, alternating (ratio: the core as fit calls it, "
            f"BLAS at 1 thread, n_threads={core_threads}; 1 thread: the core "
            "without row threads; public: loss_and_gradient)",
            rows,
            [
                ("workload", "workload", ""),
                ("dtype", "dtype", ""),
                ("shape", "n x d x K", ""),
                ("time_loss_gradient", "loss+grad ms", ".2f", 1e3),
                ("time_products", "2 products ms", ".2f", 1e3),
                ("products_blas", "products BLAS", ""),
                ("ratio", "ratio", ".2f"),
                ("ratio_one_thread", "1 thread", ".2f"),
                ("ratio_public", "public", ".2f"),
                ("target", "target", ".1f"),
                ("met", "met", ""),
            ],
        )
        return {"rows": rows}

    def group_lbfgs_vs_lr(self):
        """(b) SoftmaxRegression(lbfgs) vs LogisticRegression(lbfgs), same tol."""
        rows = []
        for name in ("digits", "dense", "wide", "sparse"):
            for suffix in ("", "32"):
                for tol_name in ("", " tol=1e-8"):
                    if name == "sparse" and not self.quick and (suffix or tol_name):
                        continue  # about a minute a fit: float64 at 1e-4 only
                    if tol_name and (suffix if not self.quick else name != "dense"):
                        continue  # tol=1e-8: float64 only (quick: dense only)
                    wl = self.workloads[name + suffix]
                    stats, ours, lr = self.compare_fits(
                        wl,
                        "ours lbfgs" + tol_name,
                        "LR lbfgs" + tol_name,
                        budget_s=self.budget_s,
                    )
                    optimum = self.optimum(wl)
                    j_ours, j_lr = objective(wl, ours), objective(wl, lr)
                    target = TARGETS["lbfgs_vs_lr_" + wl.dtype]
                    rows.append(
                        {
                            "workload": name,
                            "dtype": wl.dtype,
                            "tol": 1e-8 if tol_name else 1e-4,
                            "time_ours": stats["time_a"],
                            "time_lr": stats["time_b"],
                            "ratio": stats["ratio"],
                            "ratio_best": stats["ratio_best"],
                            "pairs": stats["pairs"],
                            "objective_ours": j_ours,
                            "objective_lr": j_lr,
                            "gap_between": (j_ours - j_lr) / abs(j_lr),
                            "gap_ours": relative_gap(j_ours, optimum),
                            "gap_lr": relative_gap(j_lr, optimum),
                            "passes_ours": self.fits[
                                wl.name, wl.dtype, "ours lbfgs" + tol_name
                            ]["passes"],
                            "passes_lr": self.fits[
                                wl.name, wl.dtype, "LR lbfgs" + tol_name
                            ]["passes"],
                            "target": target,
                            "met": stats["ratio"] <= target,
                        }
                    )
        print_table(
            "lbfgs_vs_lr: SoftmaxRegression(lbfgs) vs LogisticRegression(lbfgs), "
            "C = 1/(alpha n), max_iter=1000 both",
            rows,
            [
                ("workload", "workload", ""),
                ("dtype", "dtype", ""),
                ("tol", "tol", ".0e"),
                ("time_ours", "ours s", ".3f"),
                ("time_lr", "LR s", ".3f"),
                ("ratio", "ratio", ".2f"),
                ("pairs", "pairs", "d"),
                ("passes_ours", "ours nfev", "d"),
                ("passes_lr", "LR nfev", "d"),
                ("objective_ours", "J ours", ".8f"),
                ("objective_lr", "J LR", ".8f"),
                ("gap_between", "(J-J_LR)/J_LR", ".1e"),
                ("target", "target", ".1f"),
                ("met", "met", ""),
            ],
        )
        return {"rows": rows}

    def group_sgd_passes(self):
        """(c) full-batch sgd passes vs lbfgs passes to a 1e-6 relative gap."""
        from . import SoftmaxRegression

        rows = []
        for name in ("digits", "dense", "wide"):
            wl = self.workloads[name]
            optimum = self.optimum(wl)
            threshold = optimum + GAP_TARGET * abs(optimum)
            reference = wl.extra["reference_fit"]

            def fit(max_iter, solver, wl=wl):
                if solver == "lbfgs":
                    est = SoftmaxRegression(
                        solver="lbfgs",
                        alpha=wl.alpha,
                        tol=wl.ref_tol,
                        max_iter=max_iter,
                    )
                else:
                    # tol=1e-9 on the largest gradient entry: far below a
                    # 1e-6 gap, and the long run stops there.
                    est = SoftmaxRegression(
                        solver="sgd",
                        batch_size=None,
                        alpha=wl.alpha,
                        tol=1e-9,
                        max_iter=max_iter,
                    )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est.fit(wl.X_train, wl.y_train)
                return est

            lbfgs_est = _first_below(
                reference.loss_curve_, threshold, lambda m: fit(m, "lbfgs"), wl
            )
            cap = 5000 if name == "digits" else 2000
            if self.quick:
                cap = 3000
            sgd_long = fit(cap, "sgd")
            sgd_est = _first_below(
                sgd_long.loss_curve_, threshold, lambda m: fit(m, "sgd"), wl
            )
            lbfgs_passes = _passes(lbfgs_est, None) if lbfgs_est else None
            sgd_passes = _passes(sgd_est, None) if sgd_est else None
            ratio = sgd_passes / lbfgs_passes if sgd_passes and lbfgs_passes else None
            if sgd_passes is None:
                self.note(
                    f"sgd_passes {name}: full-batch sgd did not reach a "
                    f"{GAP_TARGET:g} gap in {cap} passes"
                )
            rows.append(
                {
                    "workload": name,
                    "optimum": optimum,
                    "gap_target": GAP_TARGET,
                    "lbfgs_passes": lbfgs_passes,
                    "lbfgs_iterations": int(lbfgs_est.n_iter_) if lbfgs_est else None,
                    "lbfgs_gap": relative_gap(objective(wl, lbfgs_est), optimum)
                    if lbfgs_est
                    else None,
                    "sgd_passes": sgd_passes,
                    "sgd_gap": relative_gap(objective(wl, sgd_est), optimum)
                    if sgd_est
                    else None,
                    "sgd_cap": cap,
                    "ratio": ratio,
                    "target": TARGETS["sgd_passes"],
                    "met": ratio is not None and ratio <= TARGETS["sgd_passes"],
                }
            )
        print_table(
            f"sgd_passes: passes to a {GAP_TARGET:g} relative objective gap "
            "(full-batch sgd vs lbfgs, float64)",
            rows,
            [
                ("workload", "workload", ""),
                ("lbfgs_passes", "lbfgs passes", "d"),
                ("lbfgs_gap", "lbfgs gap", ".1e"),
                ("sgd_passes", "sgd passes", "d"),
                ("sgd_gap", "sgd gap", ".1e"),
                ("ratio", "ratio", ".2f"),
                ("target", "target", ".1f"),
                ("met", "met", ""),
            ],
        )
        return {"rows": rows}

    def group_defaults(self):
        """(d) SoftmaxRegression() vs LogisticRegression() out of the box."""
        from sklearn.linear_model import LogisticRegression

        from . import SoftmaxRegression

        wl = self.workloads["dense"]

        def ours():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return SoftmaxRegression(random_state=self.seed).fit(
                    wl.X_train, wl.y_train
                )

        def lr():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return LogisticRegression().fit(wl.X_train, wl.y_train)

        stats, model_ours, model_lr = compare(
            ours,
            lr,
            repeat=self.repeat,
            budget_s=self.budget_s,
            min_rounds=self.min_rounds,
            settle_s=self.settle_s,
            rewarm_below_s=self.rewarm_below_s,
            back_to_back_s=self.back_to_back_s,
        )
        acc_ours = float(model_ours.score(wl.X_test, wl.y_test))
        acc_lr = float(model_lr.score(wl.X_test, wl.y_test))
        diff = 100.0 * (acc_ours - acc_lr)
        row = {
            "workload": "dense",
            "time_ours": stats["time_a"],
            "time_lr": stats["time_b"],
            "ratio": stats["ratio"],
            "ratio_best": stats["ratio_best"],
            "pairs": stats["pairs"],
            "accuracy_ours": acc_ours,
            "accuracy_lr": acc_lr,
            "accuracy_diff_points": diff,
            "n_iter_ours": int(model_ours.n_iter_),
            "n_iter_lr": int(np.max(model_lr.n_iter_)),
            "target_ratio": TARGETS["defaults_time"],
            "target_points": TARGETS["defaults_accuracy_points"],
            "met": stats["ratio"] <= TARGETS["defaults_time"]
            and diff >= -TARGETS["defaults_accuracy_points"],
        }
        print_table(
            "defaults: SoftmaxRegression() vs LogisticRegression(), test accuracy",
            [row],
            [
                ("workload", "workload", ""),
                ("time_ours", "ours s", ".3f"),
                ("time_lr", "LR s", ".3f"),
                ("ratio", "ratio", ".2f"),
                ("pairs", "pairs", "d"),
                ("accuracy_ours", "acc ours", ".4f"),
                ("accuracy_lr", "acc LR", ".4f"),
                ("accuracy_diff_points", "diff points", "+.2f"),
                ("n_iter_ours", "ours epochs", "d"),
                ("n_iter_lr", "LR iters", "d"),
                ("met", "met", ""),
            ],
        )
        return {"rows": [row]}

    def group_predict(self):
        """Prediction on the test rows: ours against LogisticRegression's."""
        methods = ("predict_proba", "predict_log_proba", "predict")
        rows = []
        for name in ("digits", "dense", "dense32", "wide", "wide32", "sparse"):
            wl = self.workloads[name]
            ours = self.fit_once(wl, "ours lbfgs")["model"]
            lr = self.fit_once(wl, "LR lbfgs")["model"]
            # Idle first: BLAS threads still spinning after a fit would slow
            # whichever side comes first.
            time.sleep(self.settle_s)
            for method in methods:
                stats, results = time_alternating(
                    {
                        "ours": partial(getattr(ours, method), wl.X_test),
                        "lr": partial(getattr(lr, method), wl.X_test),
                    },
                    repeat=self.repeat,
                    min_time_s=self.min_time_s,
                    budget_s=self.budget_s,
                )
                if method == "predict":
                    agree = float(np.mean(results["ours"] == results["lr"]))
                else:
                    # Both models sit at the same optimum (lbfgs_vs_lr).
                    agree = float(np.max(np.abs(results["ours"] - results["lr"])))
                rows.append(
                    {
                        "workload": name,
                        "dtype": wl.dtype,
                        "method": method,
                        "n_samples": int(wl.X_test.shape[0]),
                        "time_ours": stats["ours"]["time"],
                        "time_lr": stats["lr"]["time"],
                        "ratio": _ratio(stats["ours"]["time"], stats["lr"]["time"]),
                        "rounds": stats["rounds"],
                        "agreement": agree,
                    }
                )
        print_table(
            "predict: the L-BFGS models' predictions on the test rows, ours vs "
            "LogisticRegression (agreement: largest difference, or the share "
            "of equal labels)",
            rows,
            [
                ("workload", "workload", ""),
                ("dtype", "dtype", ""),
                ("method", "method", ""),
                ("n_samples", "rows", "d"),
                ("time_ours", "ours ms", ".3f", 1e3),
                ("time_lr", "LR ms", ".3f", 1e3),
                ("ratio", "ratio", ".2f"),
                ("agreement", "agreement", ".4g"),
            ],
        )
        return {"rows": rows}

    def group_epoch_vs_torch(self):
        """(e) one mini-batch epoch (256, momentum 0.9) vs a PyTorch loop."""
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is optional
            reason = f"torch is not importable ({exc}); group skipped"
            self.note(reason)
            return {"skipped": reason, "rows": []}
        from . import _loss, loss_and_gradient

        limiter = getattr(_loss, "single_threaded_blas", None)
        threads = _numpy_blas_threads(self.results["meta"]["threadpool_info"])
        previous_threads = torch.get_num_threads()
        rows = []
        learning_rate, batch = EPOCH_LEARNING_RATE, EPOCH_BATCH
        try:
            for name in ("dense32",) if self.quick else ("dense32", "wide32"):
                wl = self.workloads[name]
                X, y = wl.X_train, wl.y_train
                n, d = X.shape
                n_batches = math.ceil(n / batch)
                X_t = torch.from_numpy(X)
                y_t = torch.from_numpy(y.astype(np.int64))
                generator = torch.Generator().manual_seed(self.seed)

                def ours(wl=wl, X=X, y=y):
                    est = epoch_estimator(wl.alpha, self.seed)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        return est.fit(X, y)

                def torch_loop(n_threads, wl=wl, X_t=X_t, y_t=y_t, generator=generator):
                    def epoch():
                        torch.set_num_threads(n_threads)
                        return torch_sgd_epochs(
                            X_t,
                            y_t,
                            wl.n_classes,
                            alpha=wl.alpha,
                            epochs=1,
                            batch_size=batch,
                            learning_rate=learning_rate,
                            momentum=EPOCH_MOMENTUM,
                            generator=generator,
                        )

                    return epoch

                def floor(X=X, wl=wl):
                    return epoch_floor(X, wl.n_classes, batch, self.seed)

                kwargs = dict(
                    repeat=self.repeat,
                    warmup=True,
                    budget_s=self.budget_s,
                    settle_s=self.settle_s,
                    rewarm_below_s=self.rewarm_below_s,
                    back_to_back_s=self.back_to_back_s,
                )
                # One rotation of ours, torch, and the floor of any such
                # loop: the gather and the two products alone, with numpy's
                # BLAS pool as it is and at one thread (the faster counts).
                fns = {"ours": ours, "torch": torch_loop(threads), "floor": floor}
                contexts = {}
                if limiter is not None:
                    fns["floor_1thread"] = floor
                    contexts["floor_1thread"] = limiter
                times, results = time_alternating(fns, contexts=contexts, **kwargs)
                model_ours, model_torch = results["ours"], results["torch"]
                floor_time = min(times[k]["time"] for k in fns if k.startswith("floor"))
                stats = _pair_summary(times, "ours", "torch")
                stats1, _, _ = compare(ours, torch_loop(1), **kwargs)
                with torch.no_grad():
                    coef_t = model_torch.weight.numpy().astype(np.float64)
                    intercept_t = model_torch.bias.numpy().astype(np.float64)
                j_torch = float(
                    loss_and_gradient(
                        coef_t, intercept_t, wl.X_train64, y, alpha=wl.alpha
                    )[0]
                )
                rows.append(
                    {
                        "workload": name,
                        "n_batches": n_batches,
                        "time_ours": stats["time_a"],
                        "time_torch": stats["time_b"],
                        "ratio": stats["ratio"],
                        "ratio_best": stats["ratio_best"],
                        "pairs": stats["pairs"],
                        "time_torch_1thread": stats1["time_b"],
                        "ratio_torch_1thread": stats1["ratio"],
                        "time_floor": floor_time,
                        "floor_over_torch": _ratio(floor_time, stats["time_b"]),
                        "ours_over_floor": _ratio(stats["time_a"], floor_time),
                        "us_per_batch_ours": 1e6 * stats["time_a"] / n_batches,
                        "us_per_batch_torch": 1e6 * stats["time_b"] / n_batches,
                        "objective_ours": objective(wl, model_ours),
                        "objective_torch": j_torch,
                        "torch_threads": threads,
                        "torch_version": torch.__version__,
                        "target": TARGETS["epoch_vs_torch"],
                        "met": stats["ratio"] <= TARGETS["epoch_vs_torch"],
                    }
                )
        finally:
            torch.set_num_threads(previous_threads)
        print_table(
            f"epoch_vs_torch: one epoch, batch {batch}, SGD momentum "
            f"{EPOCH_MOMENTUM}, float32 "
            f"(ours: fit(max_iter=1), setup included; torch: {threads} threads "
            "as numpy's BLAS, and 1 thread)",
            rows,
            [
                ("workload", "workload", ""),
                ("n_batches", "batches", "d"),
                ("time_ours", "ours s", ".3f"),
                ("time_torch", "torch s", ".3f"),
                ("ratio", "ratio", ".2f"),
                ("time_torch_1thread", "torch 1t s", ".3f"),
                ("ratio_torch_1thread", "ratio 1t", ".2f"),
                ("time_floor", "floor s", ".3f"),
                ("floor_over_torch", "floor/torch", ".2f"),
                ("us_per_batch_ours", "ours us/batch", ".0f"),
                ("us_per_batch_torch", "torch us/batch", ".0f"),
                ("objective_ours", "J ours", ".4f"),
                ("objective_torch", "J torch", ".4f"),
                ("met", "met", ""),
            ],
        )
        return {"rows": rows, "learning_rate": learning_rate, "batch_size": batch}

    def _peer_methods(self, name):
        methods = list(METHODS)
        if name == "sparse" or not _torch_available():
            methods.remove("torch sgd")  # dense tensors only
        if name == "sparse" and not self.quick:
            # L-BFGS-B on 1M weights, about a minute a fit: skip the slowest.
            methods.remove("LR lbfgs tol=1e-8")
            methods.remove("MLP lbfgs")
            methods.remove("ours sgd full batch")
        return methods

    def group_stream(self):
        """``partial_fit`` on hashed-text chunks against ``SGDClassifier``'s."""
        from sklearn.linear_model import SGDClassifier

        from . import SoftmaxRegression

        if self.quick:
            n_chunks, rows, n_features, per_row = 4, 200, 2**12, 20
        else:
            n_chunks, rows, n_features, per_row = 12, 1000, 2**18, 100
        n_passes = 3
        rows_out = []
        for index, n_classes in enumerate((2, 20)):
            rng = np.random.default_rng([self.seed, 100 + index])
            chunks, X_test, y_test = hashed_chunks(
                rng, n_chunks, rows, n_features, per_row, n_classes
            )
            classes = np.arange(n_classes)
            models = {
                "ours": SoftmaxRegression(random_state=self.seed),
                "sgd": SGDClassifier(loss="log_loss", random_state=self.seed),
            }
            times = {name: [] for name in models}
            accuracy = {name: [] for name in models}
            for _ in range(n_passes):
                for position, (X, y) in enumerate(chunks):
                    # Each chunk once for each side, the order alternating.
                    order = list(models) if position % 2 == 0 else list(models)[::-1]
                    for name in order:
                        start = time.perf_counter()
                        models[name].partial_fit(X, y, classes=classes)
                        times[name].append(time.perf_counter() - start)
                for name, model in models.items():
                    accuracy[name].append(float(model.score(X_test, y_test)))
            later = {
                name: statistics.median(values[1:]) for name, values in times.items()
            }
            rows_out.append(
                {
                    "n_classes": n_classes,
                    "chunk": f"{rows}x{n_features}",
                    "calls": n_chunks * n_passes,
                    "time_ours": later["ours"],
                    "time_sgd": later["sgd"],
                    "ratio": _ratio(later["ours"], later["sgd"]),
                    "first_ours": times["ours"][0],
                    "first_sgd": times["sgd"][0],
                    "pass_ours": sum(times["ours"]) / n_passes,
                    "pass_sgd": sum(times["sgd"]) / n_passes,
                    "accuracy_ours_1": accuracy["ours"][0],
                    "accuracy_sgd_1": accuracy["sgd"][0],
                    "accuracy_ours": accuracy["ours"][-1],
                    "accuracy_sgd": accuracy["sgd"][-1],
                    "passes": n_passes,
                }
            )
        print_table(
            "stream: partial_fit on chunks of hashed-text-like CSR rows, ours vs "
            f"SGDClassifier(loss='log_loss'), both at their defaults, {n_passes} "
            "passes over the chunks (a call: median of the calls after the "
            "first; a pass: mean; test accuracy after the first pass and the "
            "last)",
            rows_out,
            [
                ("n_classes", "classes", "d"),
                ("chunk", "chunk", ""),
                ("time_ours", "ours ms", ".1f", 1e3),
                ("time_sgd", "SGD ms", ".1f", 1e3),
                ("ratio", "ratio", ".2f"),
                ("first_ours", "ours 1st ms", ".1f", 1e3),
                ("first_sgd", "SGD 1st ms", ".1f", 1e3),
                ("pass_ours", "ours pass s", ".2f"),
                ("pass_sgd", "SGD pass s", ".2f"),
                ("accuracy_ours_1", "ours acc 1", ".4f"),
                ("accuracy_sgd_1", "SGD acc 1", ".4f"),
                ("accuracy_ours", f"ours acc {n_passes}", ".4f"),
                ("accuracy_sgd", f"SGD acc {n_passes}", ".4f"),
            ],
        )
        return {"rows": rows_out}

    def group_peers(self):
        """(f) every solver and peer on every workload."""
        rows = []
        for name in ("digits", "dense", "wide", "sparse"):
            wl = self.workloads[name]
            optimum = self.optimum(wl)
            x_mb = _nbytes(wl.X_train) / 2**20
            for method in self._peer_methods(name):
                record = self.fit_once(wl, method)
                model = record["model"]
                j = objective(wl, model)
                # One epoch of mini-batches, two iterations of a full batch
                # (whose second allocates what the first does not).
                mini_batch = "sgd" in method.lower() or "adam" in method
                if method.startswith("ours sgd"):
                    mini_batch = _ran_mini_batches(model, wl)
                mem_cap = 1 if mini_batch else 2
                mem_est = make_estimator(method, wl, self.seed, max_iter=mem_cap)
                _, peak = peak_memory(
                    lambda est=mem_est, wl=wl: _fit_counted(est, wl.X_train, wl.y_train)
                )
                if method.startswith("torch"):
                    peak = None  # torch's allocator is invisible to tracemalloc
                n_iter = record["n_iter"]
                capped_at = None
                limit = model.get_params().get("max_iter")
                if limit is not None and n_iter >= limit:
                    capped_at = limit
                rows.append(
                    {
                        "workload": name,
                        "method": method,
                        "time": record["time"],
                        "timed_fits": len(record["times"]),
                        "passes": record["passes"],
                        "n_iter": n_iter,
                        "capped_at": capped_at,
                        "objective": j,
                        "gap": relative_gap(j, optimum),
                        "accuracy": float(model.score(wl.X_test, wl.y_test)),
                        "peak_mb": None if peak is None else peak / 2**20,
                        "X_mb": x_mb,
                    }
                )
        for row in rows:
            if row["gap"] is not None and row["gap"] < -1e-9:
                self.note(
                    f"peers {row['workload']} {row['method']}: objective below the "
                    f"reference optimum (gap {row['gap']:.2e})"
                )
        print_table(
            "peers: wall time, passes (L-BFGS: function evaluations; others: "
            "epochs), relative gap to J*, test accuracy, tracemalloc peak",
            rows,
            [
                ("workload", "workload", ""),
                ("method", "method", ""),
                ("time", "time s", ".3f"),
                ("passes", "passes", "d"),
                ("capped_at", "capped", "d"),
                ("gap", "gap", ".1e"),
                ("accuracy", "test acc", ".4f"),
                ("peak_mb", "peak MB", ".1f"),
                ("X_mb", "X MB", ".1f"),
            ],
        )
        return {
            "rows": rows,
            "notes": [
                "time: median of the timed fits (alternating, in lbfgs_vs_lr) "
                "or one fit",
                "peak_mb: tracemalloc peak of a separate fit capped at 1 epoch "
                "(mini-batch) or 2 iterations (L-BFGS, full batch)",
                "MLP adam: alpha_mlp = alpha * batch_size (its penalty is "
                "alpha_mlp / (2 batch) ||W||^2); MLP lbfgs: alpha * n",
                "SGDClassifier: one-vs-rest, not the softmax objective (no gap); "
                "passes are epochs per class",
                "torch sgd: the PyTorch loop of epoch_vs_torch for max_iter epochs "
                "(no stopping rule), dense workloads; no peak_mb (tracemalloc does "
                "not see torch's allocator)",
            ],
        }

    def group_curves(self):
        """Objective gap vs wall time: one fit per max_iter on a growing grid."""
        curves = []
        names = ("digits",) if self.quick else ("digits", "dense")
        methods = (
            "ours lbfgs",
            "ours sgd full batch",
            "ours sgd",
            "ours adam",
            "LR lbfgs",
            "MLP lbfgs",
            "MLP adam",
        ) + (("torch sgd",) if _torch_available() else ())
        limit_s = 0.5 if self.quick else 8.0
        for name in names:
            wl = self.workloads[name]
            optimum = self.optimum(wl)
            for method in methods:
                points = []
                spent = 0.0
                for max_iter in _grid(1000):
                    est = make_estimator(method, wl, self.seed, max_iter=max_iter)
                    if "tol" in est.get_params():
                        est.set_params(tol=0.0)
                    if "n_iter_no_change" in est.get_params():
                        est.set_params(n_iter_no_change=max_iter + 1)
                    start = time.perf_counter()
                    est, passes = _fit_counted(est, wl.X_train, wl.y_train)
                    elapsed = time.perf_counter() - start
                    spent += elapsed
                    gap = relative_gap(objective(wl, est), optimum)
                    points.append(
                        {
                            "max_iter": max_iter,
                            "time": elapsed,
                            "passes": passes,
                            "gap": gap,
                        }
                    )
                    ran = int(np.max(np.atleast_1d(est.n_iter_)))
                    if gap < 1e-12 or spent > limit_s or ran < max_iter:
                        break
                curves.append({"workload": name, "method": method, "points": points})
        rows = [
            {
                "workload": c["workload"],
                "method": c["method"],
                "points": len(c["points"]),
                "last_time": c["points"][-1]["time"],
                "last_gap": c["points"][-1]["gap"],
            }
            for c in curves
        ]
        print_table(
            "curves: relative gap vs time (one fit per max_iter; for the figure)",
            rows,
            [
                ("workload", "workload", ""),
                ("method", "method", ""),
                ("points", "points", "d"),
                ("last_time", "last time s", ".3f"),
                ("last_gap", "last gap", ".1e"),
            ],
        )
        return {"curves": curves}

    def _device_setup(self):
        """``(torch, sync)`` for the device group, or the reason to skip it."""
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is optional
            return None, f"torch is not importable ({exc})"
        import sklearn

        try:
            device = torch.device(self.device)
            torch.empty(1, device=device)
        except (RuntimeError, AssertionError) as exc:
            return None, f"no torch device {self.device!r} here ({exc})"
        try:
            with sklearn.config_context(array_api_dispatch=True):
                pass
        except (ImportError, RuntimeError) as exc:
            return None, (
                "scikit-learn's array API dispatch is off: start the bench with "
                f"SCIPY_ARRAY_API=1 ({exc})"
            )
        module = getattr(torch, device.type, None)
        sync = getattr(module, "synchronize", None) or (lambda: None)
        return (torch, sync), None

    def group_device(self):
        """(g) the same fits on torch tensors on a device (array API dispatch)."""
        found, reason = self._device_setup()
        if found is None:
            reason = f"{reason}; group skipped"
            self.note(reason)
            return {"skipped": reason, "rows": []}
        torch, sync = found
        import sklearn

        from . import _array_api, loss_and_gradient

        device = torch.device(self.device)
        names = ("dense32",) if self.quick else ("dense", "dense32", "wide32")
        # (Apple's MPS has no float64.)
        names = [n for n in names if n.endswith("32") or device.type != "mps"]
        kwargs = dict(
            repeat=self.repeat,
            warmup=True,
            budget_s=self.budget_s,
            settle_s=self.settle_s,
            rewarm_below_s=self.rewarm_below_s,
            back_to_back_s=self.back_to_back_s,
        )
        batch = EPOCH_BATCH
        rows = []
        for name in names:
            wl = self.workloads[name]
            X, y = wl.X_train, wl.y_train
            n, d = X.shape
            n_batches = math.ceil(n / batch)
            X_d = torch.asarray(X, device=device)
            y_d = torch.asarray(y.astype(np.int64), device=device)
            rng = np.random.default_rng(self.seed)
            coef = (0.01 * rng.standard_normal((wl.n_classes, d))).astype(X.dtype)
            intercept = np.zeros(wl.n_classes, dtype=X.dtype)
            coef_d = torch.asarray(coef, device=device)
            G_d = torch.rand((n, wl.n_classes), dtype=X_d.dtype, device=device)

            with sklearn.config_context(array_api_dispatch=True):
                evaluate = _array_api.device_loss(
                    X_d,
                    y,
                    1.0 / n,
                    alpha=wl.alpha,
                    label_smoothing=0.0,
                    offset=None,
                    n_threads=1,
                )

            # (a) What a solver's evaluation costs there, numpy coefficients
            # in, numpy gradient out, against the two products alone.
            def ours_loss(evaluate=evaluate, coef=coef, intercept=intercept):
                with sklearn.config_context(array_api_dispatch=True):
                    return evaluate(coef, intercept, None, None, None)

            def products(X_d=X_d, coef_d=coef_d, G_d=G_d):
                result = (X_d @ coef_d.T, G_d.T @ X_d)
                sync()
                return result

            stats_loss, _, _ = compare(
                ours_loss,
                products,
                repeat=self.repeat,
                min_time_s=self.min_time_s,
                budget_s=self.budget_s,
            )

            # (b) L-BFGS on the device, on the host, and LogisticRegression.
            def fit_on(X_fit, y_fit, estimator):
                def fit():
                    with sklearn.config_context(array_api_dispatch=True):
                        return _fit_counted(estimator(), X_fit, y_fit)[0]

                return fit

            def ours_lbfgs(wl=wl):
                return make_estimator("ours lbfgs", wl, self.seed)

            def lr_lbfgs(wl=wl):
                return make_estimator("LR lbfgs", wl, self.seed)

            times, fits = time_alternating(
                {
                    "device": fit_on(X_d, y_d, ours_lbfgs),
                    "host": fit_on(X, y, ours_lbfgs),
                    "lr": fit_on(X, y, lr_lbfgs),
                },
                **kwargs,
            )

            # (c) One mini-batch epoch against the PyTorch loop, both there.
            def ours_epoch(wl=wl, X_d=X_d, y_d=y_d):
                est = epoch_estimator(wl.alpha, self.seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with sklearn.config_context(array_api_dispatch=True):
                        return est.fit(X_d, y_d)

            generator = torch.Generator(device=device).manual_seed(self.seed)

            def torch_epoch(wl=wl, X_d=X_d, y_d=y_d, generator=generator):
                model = torch_sgd_epochs(
                    X_d,
                    y_d,
                    wl.n_classes,
                    alpha=wl.alpha,
                    epochs=1,
                    batch_size=batch,
                    generator=generator,
                )
                sync()
                return model

            stats_epoch, epoch_ours, epoch_torch = compare(
                ours_epoch, torch_epoch, **kwargs
            )
            with torch.no_grad():
                coef_t = epoch_torch.weight.cpu().numpy().astype(np.float64)
                intercept_t = epoch_torch.bias.cpu().numpy().astype(np.float64)
            j_torch, _, _ = loss_and_gradient(
                coef_t, intercept_t, wl.X_train64, y, alpha=wl.alpha
            )
            j = {side: objective(wl, fits[side]) for side in ("device", "host", "lr")}
            rows.append(
                {
                    "workload": name,
                    "dtype": wl.dtype,
                    "device": str(device),
                    "time_loss_gradient": stats_loss["time_a"],
                    "time_products": stats_loss["time_b"],
                    "ratio_loss_gradient": stats_loss["ratio"],
                    "time_lbfgs_device": times["device"]["time"],
                    "time_lbfgs_host": times["host"]["time"],
                    "time_lr": times["lr"]["time"],
                    "device_over_host": _ratio(
                        times["device"]["time"], times["host"]["time"]
                    ),
                    "device_over_lr": _ratio(
                        times["device"]["time"], times["lr"]["time"]
                    ),
                    "gap_device_host": (j["device"] - j["host"]) / abs(j["host"]),
                    "gap_device_lr": (j["device"] - j["lr"]) / abs(j["lr"]),
                    "n_iter_device": int(np.max(fits["device"].n_iter_)),
                    "n_iter_host": int(np.max(fits["host"].n_iter_)),
                    "time_epoch_ours": stats_epoch["time_a"],
                    "time_epoch_torch": stats_epoch["time_b"],
                    "ratio_epoch": stats_epoch["ratio"],
                    "us_per_batch_ours": 1e6 * stats_epoch["time_a"] / n_batches,
                    "us_per_batch_torch": 1e6 * stats_epoch["time_b"] / n_batches,
                    "objective_epoch_ours": objective(wl, epoch_ours),
                    "objective_epoch_torch": float(j_torch),
                    "torch_version": torch.__version__,
                }
            )
            del X_d, y_d, G_d, coef_d
        print_table(
            f"device: torch tensors on {device} under array_api_dispatch "
            "(loss+grad: numpy coefficients in, numpy gradient out, vs the two "
            "products there; L-BFGS at tol 1e-4 there, on the host, and "
            f"LogisticRegression on the host; one epoch, batch {batch}, SGD "
            f"momentum {EPOCH_MOMENTUM}, vs the PyTorch loop there)",
            rows,
            [
                ("workload", "workload", ""),
                ("dtype", "dtype", ""),
                ("time_loss_gradient", "loss+grad ms", ".2f", 1e3),
                ("time_products", "2 products ms", ".2f", 1e3),
                ("ratio_loss_gradient", "ratio", ".2f"),
                ("time_lbfgs_device", "lbfgs dev s", ".3f"),
                ("time_lbfgs_host", "lbfgs host s", ".3f"),
                ("time_lr", "LR s", ".3f"),
                ("device_over_lr", "dev/LR", ".2f"),
                ("gap_device_host", "(J_dev-J_host)/J", ".1e"),
                ("time_epoch_ours", "epoch s", ".3f"),
                ("time_epoch_torch", "torch epoch s", ".3f"),
                ("ratio_epoch", "ratio", ".2f"),
                ("us_per_batch_ours", "ours us/batch", ".0f"),
                ("us_per_batch_torch", "torch us/batch", ".0f"),
            ],
        )
        return {"rows": rows, "device": str(device), "batch_size": batch}


def _grid(limit):
    """1, 2, 3, 5, 8, 13, ... up to ``limit`` (about x1.6 a step)."""
    value, values = 1, []
    while value <= limit:
        values.append(value)
        value = max(value + 1, int(round(value * 1.6)))
    return values


def _first_below(curve, threshold, refit, workload):
    """The fit with the fewest iterations whose model reaches ``threshold``.

    ``curve`` (a ``loss_curve_``) gives the first guess; the guess is
    checked by refitting with that ``max_iter`` and evaluating ``J`` of
    the returned model, moving one iteration at a time (at most 20).
    Returns None if the curve never gets there.
    """
    below = [i for i, value in enumerate(curve) if value <= threshold]
    if not below:
        return None
    guess = below[0] + 1
    est = refit(guess)
    if objective(workload, est) <= threshold:
        for _ in range(20):
            if guess <= 1:
                break
            previous = refit(guess - 1)
            if objective(workload, previous) > threshold:
                break
            guess, est = guess - 1, previous
        return est
    for _ in range(20):
        guess += 1
        est = refit(guess)
        if objective(workload, est) <= threshold:
            return est
    return None


def run(args):
    """Run the benchmark described by the parsed ``args``; return an exit code."""
    groups = _selected_groups(getattr(args, "only", None))
    bench = Bench(
        quick=args.quick,
        repeat=getattr(args, "repeat", None),
        seed=getattr(args, "seed", 0),
        groups=groups,
        device=getattr(args, "device", "cuda"),
    )
    results = bench.run()
    with open(args.output, "w") as handle:
        json.dump(_jsonable(results), handle, indent=1, allow_nan=False)
    print(f"\nresults written to {args.output}")
    return 0
