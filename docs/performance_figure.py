"""Draw ``docs/_static/gap_vs_time.png``: relative objective gap against wall time.

The curves come from the ``curves`` group of the benchmark: for each solver
and peer, one fit per ``max_iter`` on a growing grid (1, 2, 3, 5, 8, ...),
each point being that fit's wall time and the relative gap
``(J - J*) / J*`` of its model, with ``J`` the objective of
:func:`sk_softmax.loss_and_gradient` at the same ``alpha`` and ``J*`` the
L-BFGS optimum at ``tol=1e-10``.

Usage (from the repository root)::

    python -m sk_softmax bench --output bench-results.json
    python docs/performance_figure.py bench-results.json

Without a JSON file (or with one that lacks the curves) the script runs the
``curves`` group itself (``--quick`` for the small workloads).  Needs
matplotlib (``pip install matplotlib``).
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "_static", "gap_vs_time.png")

# Ours in solid lines, the peers dashed.
STYLES = {
    "ours lbfgs": ("C0", "-", "o"),
    "ours sgd full batch": ("C1", "-", "s"),
    "ours sgd": ("C2", "-", "^"),
    "ours adam": ("C3", "-", "v"),
    "LR lbfgs": ("C4", "--", "o"),
    "MLP lbfgs": ("C5", "--", "s"),
    "MLP adam": ("C6", "--", "v"),
    "torch sgd": ("C7", "--", "^"),
}
LABELS = {
    "ours lbfgs": 'SoftmaxRegression(solver="lbfgs")',
    "ours sgd full batch": 'SoftmaxRegression(solver="sgd", batch_size=None)',
    "ours sgd": "SoftmaxRegression() (sgd, batch auto)",
    "ours adam": 'SoftmaxRegression(solver="adam")',
    "LR lbfgs": "LogisticRegression(lbfgs)",
    "MLP lbfgs": "MLPClassifier((), lbfgs)",
    "MLP adam": "MLPClassifier((), adam)",
    "torch sgd": "PyTorch loop (SGD, momentum 0.9, batch 256)",
}
GAP_FLOOR = 1e-14


def load_curves(path=None, quick=False):
    """``(curves, meta, workloads)`` from a bench JSON, or from a fresh run."""
    if path is not None:
        with open(path) as handle:
            results = json.load(handle)
        group = results.get("groups", {}).get("curves")
        if group and group.get("curves"):
            return group["curves"], results.get("meta", {}), results["workloads"]
        print(f"{path} has no curves; running the curves group", file=sys.stderr)
    sys.path.insert(0, os.path.dirname(HERE))
    from sk_softmax import _bench

    results = _bench.Bench(quick=quick, groups=["curves"]).run()
    return (
        results["groups"]["curves"]["curves"],
        results["meta"],
        results["workloads"],
    )


def draw(curves, meta, workloads, output=DEFAULT_OUTPUT):
    """Plot one panel per workload and save the PNG to ``output``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(curve["workload"] for curve in curves))
    fig, axes = plt.subplots(
        1, len(names), figsize=(6.0 * len(names), 4.6), squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=True):
        for curve in curves:
            if curve["workload"] != name:
                continue
            method = curve["method"]
            color, line, marker = STYLES.get(method, ("k", ":", "."))
            points = sorted(curve["points"], key=lambda p: p["max_iter"])
            times = [p["time"] for p in points]
            gaps = [max(p["gap"], GAP_FLOOR) for p in points]
            ax.plot(
                times,
                gaps,
                color=color,
                linestyle=line,
                marker=marker,
                markersize=4,
                label=LABELS.get(method, method),
            )
        ax.axhline(1e-6, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(GAP_FLOOR / 2, None)
        info = workloads.get(name, {})
        shape = (
            f"{info.get('n_train')} x {info.get('n_features')}, "
            f"{info.get('n_classes')} classes"
            if info
            else ""
        )
        ax.set_title(f"{name} ({shape})")
        ax.set_xlabel("wall time of the fit (s)")
        ax.set_ylabel("relative objective gap (J - J*) / J*")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower left")
    blas = [
        f"{entry.get('internal_api')} {entry.get('version')} "
        f"({entry.get('num_threads')} threads)"
        for entry in meta.get("threadpool_info", [])
        if entry.get("user_api") == "blas"
    ]
    fig.suptitle(
        "Objective gap vs wall time, one fit per max_iter\n"
        f"{meta.get('cpu_count')} CPUs; BLAS: {'; '.join(blas)}",
        fontsize=9,
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="?", help="a bench-results.json with curves")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="PNG to write")
    parser.add_argument(
        "--quick", action="store_true", help="small workloads when running fits"
    )
    args = parser.parse_args(argv)
    curves, meta, workloads = load_curves(args.json, quick=args.quick)
    print(draw(curves, meta, workloads, args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
