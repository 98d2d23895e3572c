"""
Learning from a stream with partial_fit
=======================================

When the training data do not fit in memory, or arrive over time,
:meth:`~sk_softmax.SoftmaxRegression.partial_fit` trains on one chunk at a
time. Each call runs one epoch of the stochastic solver over the chunk and
keeps the weights, the optimizer's state and the step size for the next call.

This example writes a data set to disk, reads it back in chunks of 1000 rows
through a memory map (so only one chunk is ever loaded), and records the test
log loss after every chunk: the learning curve of a model trained out of core.
"""

# %%
# A data set on disk
# ------------------
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_classification
from sklearn.metrics import accuracy_score, log_loss

from sk_softmax import SoftmaxRegression

X, y = make_classification(
    n_samples=25_000,
    n_features=20,
    n_informative=10,
    n_classes=5,
    n_clusters_per_class=1,
    random_state=0,
)
X_test, y_test = X[20_000:], y[20_000:]
classes = np.unique(y)

workdir = tempfile.TemporaryDirectory()
np.save(Path(workdir.name) / "X.npy", X[:20_000])
np.save(Path(workdir.name) / "y.npy", y[:20_000])


def chunks(chunk_size=1000):
    """Yield (X, y) chunks read lazily from the .npy files."""
    X_disk = np.load(Path(workdir.name) / "X.npy", mmap_mode="r")
    y_disk = np.load(Path(workdir.name) / "y.npy", mmap_mode="r")
    for start in range(0, X_disk.shape[0], chunk_size):
        stop = start + chunk_size
        yield np.asarray(X_disk[start:stop]), np.asarray(y_disk[start:stop])


# %%
# Three ways to learn from the stream
# -----------------------------------
# ``batch_size`` matters more for ``partial_fit`` than for ``fit``. With
# ``batch_size=None``, a chunk of 1000 rows is a single full batch, so each
# call makes one accurate gradient step; mini-batches of 100 rows make ten
# noisier steps per chunk (the default ``"auto"`` takes batches of up to 256
# rows in ``partial_fit``: four steps here). The stream is read twice (two
# passes), as one would for a data set that is large but finite.
models = {
    "sgd, batch_size=100": SoftmaxRegression(batch_size=100, random_state=0),
    "adam, batch_size=100": SoftmaxRegression(
        solver="adam", batch_size=100, learning_rate_init=0.01, random_state=0
    ),
    "sgd, batch_size=None (1 step per chunk)": SoftmaxRegression(
        batch_size=None, random_state=0
    ),
}
curves = {name: ([], [], []) for name in models}
n_passes = 2
for _ in range(n_passes):
    for X_chunk, y_chunk in chunks():
        for name, model in models.items():
            model.partial_fit(X_chunk, y_chunk, classes=classes)
            seen, losses, accuracies = curves[name]
            seen.append((seen[-1] if seen else 0) + len(y_chunk))
            proba = model.predict_proba(X_test)
            losses.append(log_loss(y_test, proba, labels=classes))
            accuracies.append(accuracy_score(y_test, classes[proba.argmax(axis=1)]))
workdir.cleanup()

# %%
# The reference: the same model fitted on all the data at once, which is
# what the streamed models should approach.
full = SoftmaxRegression(solver="lbfgs").fit(X[:20_000], y[:20_000])
full_loss = log_loss(y_test, full.predict_proba(X_test))
full_accuracy = full.score(X_test, y_test)
print(f"full batch: log loss {full_loss:.4f}, accuracy {full_accuracy:.4f}")
for name, (_, losses, accuracies) in curves.items():
    print(f"{name:<44} log loss {losses[-1]:.4f}, accuracy {accuracies[-1]:.4f}")

# %%
# The learning curves
# -------------------
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
for name, (seen, losses, accuracies) in curves.items():
    axes[0].plot(seen, losses, label=name)
    axes[1].plot(seen, accuracies, label=name)
for ax, reference in [(axes[0], full_loss), (axes[1], full_accuracy)]:
    ax.axhline(reference, color="k", linestyle="--", label="fit on all the data")
    ax.axvline(20_000, color="0.6", linewidth=0.8)
    ax.set_xlabel("training samples seen")
axes[0].set(ylabel="test log loss", title="Test log loss as chunks arrive")
axes[1].set(ylabel="test accuracy", title="Test accuracy as chunks arrive")
axes[0].legend()
fig.tight_layout()

# %%
# Mini-batches learn fastest from the first chunks: after a few thousand
# samples they are far ahead of one step per chunk. With a constant step they
# then level off at a distance from the full-batch model set by the gradient
# noise. One step per chunk starts slowly: each of its steps follows the
# gradient of a whole chunk, but forty steps (two passes over twenty chunks;
# the grey line marks the start of the second) bring its accuracy level with
# the others while its log loss is still behind. Few chunks call for
# mini-batches; a long stream is well served by either.
plt.show()
