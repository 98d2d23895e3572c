"""Command line: ``python -m sk_softmax demo`` and ``python -m sk_softmax bench``."""

import argparse
import contextlib
import io
import math
import os
import re
import shutil
import sys
import time
import warnings

import numpy as np

from ._bench import bounded, output_file


def figure_file(path):
    """An argparse ``type``: a writable file whose extension matplotlib knows.

    matplotlib appends ``.png`` to a name without one, and fails on an
    unknown one only once the figure is drawn, after every fit.
    """
    path = output_file(path)
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if not extension:
        raise argparse.ArgumentTypeError(
            f"{path!r} has no extension; name the format, e.g. {path}.png"
        )
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:  # the missing matplotlib is reported with its remedy
        return path
    known = FigureCanvasBase.get_supported_filetypes()
    if extension == "pgf":
        from matplotlib import rcParams

        if shutil.which(rcParams["pgf.texsystem"]) is None:
            raise argparse.ArgumentTypeError(
                f"matplotlib writes .pgf files with {rcParams['pgf.texsystem']}, "
                "which is not installed; use another format, e.g. .pdf or .svg"
            )
    if extension not in known:
        raise argparse.ArgumentTypeError(
            f"matplotlib cannot write .{extension} files; use one of "
            + ", ".join(sorted(known))
        )
    return path


DATASETS = ("toy", "digits", "iris", "wine", "breast_cancer")
DEFAULT_DATASETS = ("toy", "digits")
_TOY_NAME = "toy (3 Gaussians)"


def _toy_problem(n_per_class=200, random_state=0):
    """Three 2-D Gaussian classes centred at (-2, -2), (2, 2) and (-2, 2)."""
    rng = np.random.RandomState(random_state)
    centers = np.array([[-2.0, -2.0], [2.0, 2.0], [-2.0, 2.0]])
    X = np.vstack([rng.normal(c, 1.0, size=(n_per_class, 2)) for c in centers])
    y = np.repeat(np.arange(3), n_per_class)
    return X, y


def _load_dataset(name):
    """``(display name, X, y)`` for one of :data:`DATASETS`."""
    if name == "toy":
        return (_TOY_NAME, *_toy_problem())
    from sklearn import datasets

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return name, X, y


def _equivalent_C(alpha, n_samples, n_classes):
    """``C`` of LogisticRegression with the optimum of ``alpha`` (no smoothing).

    ``C = 1 / (alpha n)`` for more than two classes; ``2 / (alpha n)`` for two,
    where the two softmax rows share the penalty (``W[1] = -W[0]``).  (With
    sample weights, ``n`` would be their sum; the demo has none.)  No
    penalty, ``alpha = 0``, is ``C = inf``.

    Examples
    --------
    >>> from sk_softmax.__main__ import _equivalent_C
    >>> [_equivalent_C(alpha, 50, k) for alpha, k in [(0.01, 3), (0.01, 2), (0, 3)]]
    [2.0, 4.0, inf]
    """
    if alpha == 0:
        return math.inf
    # (Divided in turn: alpha * n overflowed for alpha near 1e306, and C = 0
    # is no C LogisticRegression takes.)
    return (2.0 if n_classes == 2 else 1.0) / alpha / n_samples


def _softmax_parameters(model):
    """``(W, b)`` in SoftmaxRegression's form, also for a binary LogisticRegression."""
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # one vector w for z_1 - z_0: W = [-w/2, w/2]
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    return coef, intercept


def _objective(pipe, X, y, alpha):
    """``J(W, b)`` of a fitted scaler + classifier pipeline on (X, y)."""
    from . import loss_and_gradient

    model = pipe[-1]
    coef, intercept = _softmax_parameters(model)
    y_index = np.searchsorted(model.classes_, y)
    return loss_and_gradient(
        coef, intercept, pipe[:-1].transform(X), y_index, alpha=alpha
    )[0]


# ---------------------------------------------------------------- progress


class _EpochProgress(io.TextIOBase):
    """Shows the estimator's per-epoch ``verbose`` lines as a progress display.

    It stands in for ``sys.stdout`` during a fit (``contextlib.redirect_stdout``)
    and turns the lines ``Epoch N, loss = ...`` (``Iteration N`` for L-BFGS) into

    - ``"live"``: one line on the terminal, rewritten in place at most ten times
      a second and erased when the fit ends;
    - ``"lines"``: plain lines, for logs and pipes, at most one per ``interval``
      seconds and none before ``interval`` seconds have passed, so only long
      fits show progress (``interval=0`` prints every epoch).

    Anything else the estimator prints is dropped.
    """

    _EPOCH = re.compile(r"^(Epoch|Iteration) (\d+), loss = (\S+?),?(?:\s|$)")

    def __init__(self, label, max_iter, stream, mode, interval=1.0):
        self.label = label
        self.max_iter = max_iter
        self.stream = stream
        self.mode = mode
        self.interval = interval
        self._pending = ""
        self._start = time.monotonic()
        self._last_shown = None
        self._width = 0

    def writable(self):
        return True

    def write(self, text):
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._show(line)
        return len(text)

    def _show(self, line):
        match = self._EPOCH.match(line)
        if match is None:
            return
        unit = "epoch" if match[1] == "Epoch" else "iteration"
        message = f"  {self.label}: {unit} {match[2]}/{self.max_iter}, loss {match[3]}"
        now = time.monotonic()
        if self.mode == "live":
            if self._last_shown is not None and now - self._last_shown < 0.1:
                return
            self.stream.write("\r" + message.ljust(self._width))
            self._width = max(self._width, len(message))
        else:
            since = now - (
                self._start if self._last_shown is None else self._last_shown
            )
            if since < self.interval:
                return
            self.stream.write(message + "\n")
        self.stream.flush()
        self._last_shown = now

    def close(self):
        if self.mode == "live" and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        super().close()


def _progress_mode(requested, stream):
    """``"live"``, ``"lines"`` or ``"off"``; ``"auto"`` is live on a terminal."""
    if requested != "auto":
        return requested
    isatty = getattr(stream, "isatty", None)
    return "live" if isatty is not None and isatty() else "lines"


@contextlib.contextmanager
def _progress(pipe, label, mode, interval):
    """Fit-time context: show a SoftmaxRegression's verbose epochs as progress."""
    from . import SoftmaxRegression

    model = pipe[-1]
    if mode == "off" or not isinstance(model, SoftmaxRegression):
        yield
        return
    model.set_params(verbose=1)
    display = _EpochProgress(label, model.max_iter, sys.stdout, mode, interval)
    try:
        with contextlib.redirect_stdout(display):
            yield
    finally:
        display.close()
        model.set_params(verbose=0)


# -------------------------------------------------------------------- plots


def _import_matplotlib():
    """matplotlib's Figure class, or None when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def _plot_decision_regions(ax, result):
    """Predicted classes of the first model over the plane, with the data."""
    X, y = result["X_train"], result["y_train"]
    pipe = result["pipes"]["SoftmaxRegression(sgd)"]
    low, high = X.min(axis=0) - 1.0, X.max(axis=0) + 1.0
    xx, yy = np.meshgrid(
        np.linspace(low[0], high[0], 250), np.linspace(low[1], high[1], 250)
    )
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    proba = pipe.predict_proba(grid)
    n_classes = proba.shape[1]
    predicted = proba.argmax(axis=1).reshape(xx.shape)
    ax.contourf(
        xx,
        yy,
        predicted,
        levels=np.arange(n_classes + 1) - 0.5,
        cmap="tab10",
        vmin=0,
        vmax=9,
        alpha=0.2,
    )
    lines = ax.contour(
        xx,
        yy,
        proba.max(axis=1).reshape(xx.shape),
        levels=[0.5, 0.9, 0.99],
        colors="k",
        linewidths=0.7,
    )
    ax.clabel(lines, fontsize=7)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="tab10", vmin=0, vmax=9, s=8)
    ax.set(
        title=f"{result['name']}: SoftmaxRegression(sgd)",
        xlabel="feature 0",
        ylabel="feature 1",
    )


def _plot_loss_curves(ax, result):
    """``loss_curve_`` of the SoftmaxRegression models, LogisticRegression's J."""
    for model_name, pipe in result["pipes"].items():
        curve = getattr(pipe[-1], "loss_curve_", None)
        if curve:
            ax.semilogy(np.arange(1, len(curve) + 1), curve, label=model_name)
    ax.axhline(
        result["objectives"]["LogisticRegression"],
        color="k",
        linestyle="--",
        linewidth=1,
        label="LogisticRegression (final J)",
    )
    ax.set(
        title=f"{result['name']}: training objective",
        xlabel="epoch (iteration for lbfgs)",
        ylabel="J(W, b)",
    )
    ax.legend(fontsize=8)


def _save_plot(results, path, Figure):
    fig = Figure(figsize=(5.5 * len(results), 4.5), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, result in zip(axes, results, strict=True):
        if result["X_train"].shape[1] == 2:
            _plot_decision_regions(ax, result)
        else:
            _plot_loss_curves(ax, result)
    fig.savefig(path)


# --------------------------------------------------------------------- demo


def add_demo_arguments(parser):
    """Register the demo options on an argparse (sub)parser."""
    parser.add_argument(
        "--dataset",
        action="append",
        choices=DATASETS,
        help="data set to fit; repeat for several (default: "
        + " and ".join(DEFAULT_DATASETS)
        + ")",
    )
    parser.add_argument(
        "--alpha",
        type=bounded(float, 0.0),
        default=1e-3,
        help="L2 strength of SoftmaxRegression; LogisticRegression gets the "
        "equivalent C (default: %(default)g)",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        type=figure_file,
        default=None,
        help="save a figure (needs matplotlib): decision regions for the 2-D toy "
        "problem, training loss curves for the others",
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "live", "lines", "off"),
        default="auto",
        help="show the epochs of each fit: 'live' rewrites one line, 'lines' "
        "prints plain lines; 'auto' is live on a terminal and lines otherwise "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--progress-interval",
        type=bounded(float, 0.0),
        default=1.0,
        metavar="SECONDS",
        help="with plain lines, print at most one per SECONDS, and only for fits "
        "running longer than that (default: %(default)g; 0 prints every epoch)",
    )


def _fit_dataset(name, X, y, alpha, progress_mode, progress_interval):
    """Fit the three models on a split of (X, y); return the table rows and data."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from . import SoftmaxRegression

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    n_classes = np.unique(y_train).size
    C = _equivalent_C(alpha, X_train.shape[0], n_classes)
    models = {
        "SoftmaxRegression(sgd)": SoftmaxRegression(alpha=alpha, random_state=0),
        "SoftmaxRegression(lbfgs)": SoftmaxRegression(alpha=alpha, solver="lbfgs"),
        "LogisticRegression": LogisticRegression(C=C, max_iter=1000),
    }
    result = {
        "name": name,
        "X_train": X_train,
        "y_train": y_train,
        "pipes": {},
        "objectives": {},
        "rows": [],
        "warnings": [],
    }
    for model_name, model in models.items():
        pipe = make_pipeline(StandardScaler(), model)
        label = f"{name} / {model_name}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            with _progress(pipe, label, progress_mode, progress_interval):
                start = time.perf_counter()
                pipe.fit(X_train, y_train)
                elapsed = time.perf_counter() - start
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        # Shown under the table, not between the progress lines.
        result["warnings"] += [
            f"{label}: {w.category.__name__}: {w.message}" for w in caught
        ]
        proba = pipe.predict_proba(X_test)
        objective = _objective(pipe, X_train, y_train, alpha)
        n_iter = int(np.max(pipe[-1].n_iter_))
        result["pipes"][model_name] = pipe
        result["objectives"][model_name] = objective
        result["rows"].append(
            (
                name,
                model_name,
                pipe.score(X_test, y_test),
                log_loss(y_test, proba, labels=pipe.classes_),
                objective,
                f"{n_iter}{'' if converged else '*'}",
                elapsed,
            )
        )
    return result


def _print_table(results):
    header = (
        f"{'dataset':<20} {'model':<26} {'accuracy':>9} {'log loss':>9} "
        f"{'train J':>9} {'iters':>6} {'fit s':>8}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        for dataset, model_name, acc, loss, objective, n_iter, elapsed in result[
            "rows"
        ]:
            print(
                f"{dataset:<20} {model_name:<26} {acc:>9.4f} {loss:>9.4f} "
                f"{objective:>9.5f} {n_iter:>6} {elapsed:>8.3f}"
            )
    print(
        "\naccuracy, log loss: on a held-out quarter of the data. train J: the\n"
        "objective J(W, b) of SoftmaxRegression on the standardized training set;\n"
        "LogisticRegression gets the C with the same optimum, so the values agree\n"
        "up to each solver's tolerance (with --alpha 0 on separable data there is\n"
        "no optimum to agree on)."
    )
    if any(row[5].endswith("*") for result in results for row in result["rows"]):
        print("* stopped before reaching tol (the ConvergenceWarning below says why)")
    caught = [line for result in results for line in result["warnings"]]
    if caught:
        print("\nwarnings:")
        for line in caught:
            print(f"- {line}")


def demo(args=None):
    """Fit SoftmaxRegression and LogisticRegression side by side and print a table.

    ``args`` holds the options of :func:`add_demo_arguments`; None means the
    defaults.  Returns the exit code.
    """
    if args is None:
        parser = argparse.ArgumentParser()
        add_demo_arguments(parser)
        args = parser.parse_args([])
    Figure = None
    if args.plot is not None:
        Figure = _import_matplotlib()
        if Figure is None:
            print(
                "sk-softmax demo: error: --plot needs matplotlib, which is not "
                "installed; install it with: pip install matplotlib (or the "
                "package's extra: pip install 'sk-softmax[plot]')",
                file=sys.stderr,
            )
            return 2
    mode = _progress_mode(args.progress, sys.stdout)
    results = []
    for dataset in args.dataset or DEFAULT_DATASETS:
        name, X, y = _load_dataset(dataset)
        results.append(
            _fit_dataset(name, X, y, args.alpha, mode, args.progress_interval)
        )
    _print_table(results)
    if Figure is not None:
        _save_plot(results, args.plot, Figure)
        print(f"figure saved to {args.plot}")
    return 0


def main(argv=None):
    """Entry point of ``python -m sk_softmax`` and the ``sk-softmax`` script."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="sk-softmax", description=__doc__.replace("``", "")
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo",
        help="fit SoftmaxRegression and LogisticRegression side by side",
        description="Fit SoftmaxRegression (sgd and lbfgs) and LogisticRegression "
        "with the equivalent C on standardized data, and compare them on a "
        "held-out quarter.",
    )
    add_demo_arguments(demo_parser)
    from . import _bench

    bench_parser = commands.add_parser("bench", help="run the benchmark suite")
    _bench.add_arguments(bench_parser)
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return demo(args)
        if args.command == "bench":
            return _bench.run(args)
    except BrokenPipeError:
        # The reader of the output went away (``| head``): no traceback, and
        # none at exit either, when Python flushes stdout.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 1  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
