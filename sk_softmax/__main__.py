"""Command line: ``python -m sk_softmax demo`` and ``python -m sk_softmax bench``."""

import argparse
import sys
import time
import warnings

import numpy as np


def _toy_problem(n_per_class=200, random_state=0):
    """Three 2-D Gaussian classes centred at (-2, -2), (2, 2) and (-2, 2)."""
    rng = np.random.RandomState(random_state)
    centers = np.array([[-2.0, -2.0], [2.0, 2.0], [-2.0, 2.0]])
    X = np.vstack([rng.normal(c, 1.0, size=(n_per_class, 2)) for c in centers])
    y = np.repeat(np.arange(3), n_per_class)
    return X, y


def _datasets():
    from sklearn.datasets import load_digits

    X_digits, y_digits = load_digits(return_X_y=True)
    return {"toy (3 Gaussians)": _toy_problem(), "digits": (X_digits, y_digits)}


def demo(args=None):
    """Fit SoftmaxRegression and LogisticRegression side by side and print a table."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from . import SoftmaxRegression

    rows = []
    for name, (X, y) in _datasets().items():
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.25, random_state=0, stratify=y
        )
        n = X_train.shape[0]
        alpha = 1e-3
        models = {
            "SoftmaxRegression(sgd)": SoftmaxRegression(alpha=alpha, random_state=0),
            "SoftmaxRegression(lbfgs)": SoftmaxRegression(alpha=alpha, solver="lbfgs"),
            "LogisticRegression": LogisticRegression(
                C=1.0 / (alpha * n), max_iter=1000
            ),
        }
        for model_name, model in models.items():
            pipe = make_pipeline(StandardScaler(), model)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                start = time.perf_counter()
                pipe.fit(X_train, y_train)
                elapsed = time.perf_counter() - start
            proba = pipe.predict_proba(X_test)
            rows.append(
                (
                    name,
                    model_name,
                    pipe.score(X_test, y_test),
                    log_loss(y_test, proba, labels=pipe.classes_),
                    elapsed,
                )
            )
    header = (
        f"{'dataset':<20} {'model':<26} {'accuracy':>9} {'log loss':>9} {'fit s':>8}"
    )
    print(header)
    print("-" * len(header))
    for dataset, model_name, acc, loss, elapsed in rows:
        print(
            f"{dataset:<20} {model_name:<26} {acc:>9.4f} {loss:>9.4f} {elapsed:>8.3f}"
        )
    return 0


def main(argv=None):
    """Entry point of ``python -m sk_softmax`` and the ``sk-softmax`` script."""
    parser = argparse.ArgumentParser(prog="sk-softmax", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="fit the toy problem and digits, compare")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args)
    return 1  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
