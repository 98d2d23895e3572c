"""Tests of the command line: ``python -m sk_softmax demo`` and the options.

The data sets are the small ones (iris, wine, breast_cancer, the toy problem),
so the module runs in a few seconds. Plot tests need matplotlib and are
skipped without it; the error message for a missing matplotlib is tested by
hiding the module.
"""

import functools
import io
import re
import subprocess
import sys

import numpy as np
import pytest

from sk_softmax import SoftmaxRegression
from sk_softmax.__main__ import (
    DATASETS,
    DEFAULT_DATASETS,
    _EpochProgress,
    _equivalent_C,
    _progress_mode,
    _softmax_parameters,
    _toy_problem,
    main,
)

MODELS = ("SoftmaxRegression(sgd)", "SoftmaxRegression(lbfgs)", "LogisticRegression")


def _rows(output):
    """Table rows of the demo output: {(dataset, model): [accuracy, loss, J]}."""
    rows = {}
    for line in output.splitlines():
        for model in MODELS:
            if f" {model} " in line:
                dataset = line[: line.index(model)].strip()
                numbers = line[line.index(model) + len(model) :].split()
                rows[dataset, model] = [float(value) for value in numbers[:3]]
    return rows


def test_toy_problem_is_three_gaussians():
    X, y = _toy_problem(n_per_class=500)
    assert X.shape == (1500, 2)
    np.testing.assert_array_equal(np.bincount(y), [500, 500, 500])
    means = np.array([X[y == k].mean(axis=0) for k in range(3)])
    np.testing.assert_allclose(means, [[-2, -2], [2, 2], [-2, 2]], atol=0.15)


def test_default_datasets_are_toy_and_digits(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    assert DEFAULT_DATASETS == ("toy", "digits")
    for name in DATASETS:
        assert name in help_text
    for option in ("--dataset", "--plot", "--progress", "--alpha"):
        assert option in help_text


def test_demo_one_dataset(capsys):
    assert main(["demo", "--dataset", "iris", "--progress", "off"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert set(rows) == {("iris", model) for model in MODELS}
    for accuracy, loss, _ in rows.values():
        assert accuracy > 0.85
        assert 0 < loss < 0.5


def test_demo_without_penalty(capsys):
    # alpha=0 passes the option's check; LogisticRegression then gets C=inf
    # (it divided by zero).
    assert main(["demo", "--dataset", "iris", "--alpha", "0", "--progress", "off"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert set(rows) == {("iris", model) for model in MODELS}


def test_demo_several_datasets(capsys):
    argv = ["demo", "--dataset", "iris", "--dataset", "wine", "--progress", "off"]
    assert main(argv) == 0
    datasets = {dataset for dataset, _ in _rows(capsys.readouterr().out)}
    assert datasets == {"iris", "wine"}


def test_demo_toy_dataset_name(capsys):
    assert main(["demo", "--dataset", "toy", "--progress", "off"]) == 0
    datasets = {dataset for dataset, _ in _rows(capsys.readouterr().out)}
    assert datasets == {"toy (3 Gaussians)"}


def test_demo_rejects_unknown_dataset(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--dataset", "mnist"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("dataset", ["breast_cancer", "wine"])
def test_demo_objectives_agree(dataset, capsys):
    # lbfgs and LogisticRegression with the equivalent C reach the same optimum,
    # which checks the alpha <-> C mapping, for two classes as for three.
    assert main(["demo", "--dataset", dataset, "--progress", "off"]) == 0
    rows = _rows(capsys.readouterr().out)
    J_ours = rows[dataset, "SoftmaxRegression(lbfgs)"][2]
    J_theirs = rows[dataset, "LogisticRegression"][2]
    assert J_ours == pytest.approx(J_theirs, abs=2e-4)


@pytest.mark.parametrize(("n_classes", "factor"), [(2, 2.0), (3, 1.0), (10, 1.0)])
def test_equivalent_C(n_classes, factor):
    assert _equivalent_C(1e-2, 200, n_classes) == pytest.approx(factor / 2.0)
    # alpha * n beyond float64: still a positive C (it was 0, which
    # LogisticRegression refused with a traceback after the other fits).
    assert 0 < _equivalent_C(1e306, 1347, n_classes) < 1e-300


def test_demo_with_the_largest_alpha(capsys):
    argv = ["demo", "--dataset", "wine", "--alpha", "1.7e308", "--progress", "off"]
    assert main(argv) == 0
    assert set(_rows(capsys.readouterr().out)) == {("wine", m) for m in MODELS}


def test_demo_shows_the_warnings_it_marks(capsys, monkeypatch):
    # The table marks a fit stopped before tol and said "a ConvergenceWarning
    # says why", but it recorded the warnings and showed none of them.
    # (The demo's data sets all converge: its models get max_iter=5.)
    import sk_softmax

    short = functools.partial(sk_softmax.SoftmaxRegression, max_iter=5)
    monkeypatch.setattr(sk_softmax, "SoftmaxRegression", short)
    argv = ["demo", "--dataset", "breast_cancer", "--alpha", "0", "--progress", "off"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    marked = [row for row in out.splitlines() if re.search(r" \d+\* ", row)]
    assert marked
    warnings_part = out[out.index("\nwarnings:\n") :]
    for row in marked:
        model = next(m for m in MODELS if f" {m} " in row)
        assert f"breast_cancer / {model}: ConvergenceWarning: " in warnings_part


def test_softmax_parameters_of_binary_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    X, y = _toy_problem()
    X, y = X[y < 2], y[y < 2]
    model = LogisticRegression().fit(X, y)
    coef, intercept = _softmax_parameters(model)
    assert coef.shape == (2, 2)
    scores = X @ coef.T + intercept
    np.testing.assert_allclose(scores[:, 1] - scores[:, 0], model.decision_function(X))
    softmax = SoftmaxRegression().fit(X, y)
    assert _softmax_parameters(softmax)[0] is softmax.coef_


# ------------------------------------------------------------------ progress


def test_progress_lines_every_epoch(capsys):
    argv = ["demo", "--dataset", "iris", "--progress", "lines"]
    assert main([*argv, "--progress-interval", "0"]) == 0
    out = capsys.readouterr().out
    epochs = re.findall(r"iris / SoftmaxRegression\(sgd\): epoch (\d+)/200", out)
    assert epochs[:3] == ["1", "2", "3"]
    assert re.search(r"iris / SoftmaxRegression\(lbfgs\): iteration 1/200", out)
    # The progress lines come before the table, and the estimators are left
    # quiet afterwards (no raw "Epoch N, loss" lines leak through).
    assert out.index("epoch 1/200") < out.index("accuracy")
    assert "Epoch 1, loss" not in out


def test_progress_lines_only_for_long_fits(capsys):
    # A fit shorter than the interval prints no progress line.
    argv = ["demo", "--dataset", "iris", "--progress", "lines"]
    assert main([*argv, "--progress-interval", "60"]) == 0
    assert "epoch" not in capsys.readouterr().out


def test_progress_off(capsys):
    assert main(["demo", "--dataset", "iris", "--progress", "off"]) == 0
    out = capsys.readouterr().out
    assert "epoch" not in out and "Epoch" not in out


def test_progress_auto_is_lines_off_a_terminal():
    assert _progress_mode("auto", io.StringIO()) == "lines"

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert _progress_mode("auto", Terminal()) == "live"
    assert _progress_mode("off", Terminal()) == "off"


def test_live_progress_rewrites_one_line():
    stream = io.StringIO()
    display = _EpochProgress("toy / sgd", 200, stream, "live")
    display.write("Epoch 1, loss = 1.00000000, max|grad| = 1.0e-01\nEpo")
    display.write("ch 2, loss = 0.50000000\nLearning rate lowered to 0.1\n")
    display.close()
    text = stream.getvalue()
    assert "\n" not in text
    assert text.startswith("\r  toy / sgd: epoch 1/200, loss 1.00000000")
    # Erased at the end: the table printed next starts on a clean line.
    assert text.endswith("\r")


def test_lines_progress_parses_lbfgs_iterations():
    stream = io.StringIO()
    display = _EpochProgress("iris / lbfgs", 100, stream, "lines", interval=0)
    display.write("Iteration 7, loss = 0.12345678\n")
    display.close()
    assert stream.getvalue() == "  iris / lbfgs: iteration 7/100, loss 0.12345678\n"


# --------------------------------------------------------------------- plots


def _assert_png(path):
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


def test_plot_decision_regions(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "regions.png"
    argv = ["demo", "--dataset", "toy", "--progress", "off", "--plot", str(path)]
    assert main(argv) == 0
    _assert_png(path)
    assert f"figure saved to {path}" in capsys.readouterr().out


def test_plot_loss_curves_for_several_datasets(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    argv = ["demo", "--dataset", "iris", "--dataset", "breast_cancer"]
    assert main([*argv, "--progress", "off", "--plot", str(path)]) == 0
    _assert_png(path)


def test_plot_without_matplotlib(tmp_path, monkeypatch, capsys):
    # None in sys.modules makes "import matplotlib..." raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    path = tmp_path / "never.png"
    assert main(["demo", "--dataset", "iris", "--plot", str(path)]) == 2
    captured = capsys.readouterr()
    assert "--plot needs matplotlib" in captured.err
    assert "pip install" in captured.err
    # It fails before fitting anything.
    assert "accuracy" not in captured.out
    assert not path.exists()


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "sk_softmax", "demo", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "--dataset" in result.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--alpha", "-1"], "--alpha: must be a finite number of at least 0"),
        (["demo", "--alpha", "nan"], "--alpha: must be a finite number"),
        (["demo", "--alpha", "abc"], "--alpha: invalid float value"),
        (["demo", "--progress-interval", "-2"], "--progress-interval: must be"),
        (["demo", "--plot", "/nonexistent-folder/x.png"], "--plot: folder"),
        (["bench", "--repeat", "0"], "--repeat: must be a finite number of at least 1"),
        (["bench", "--seed", "-1"], "--seed: must be"),
        (["bench", "--output", "/nonexistent-folder/x.json"], "--output: folder"),
        (["bench", "--output", ""], "--output: the file name is empty"),
        (["bench", "--output", "/proc/x.json"], "--output: cannot write"),
        (["demo", "--plot", "/proc/x.png"], "--plot: cannot write"),
        (["demo", "--plot", ""], "--plot: the file name is empty"),
        (["bench", "--only", "nope"], "--only: unknown group(s) nope; choose from"),
        (["bench", "--only", ","], "--only: no group named"),
        (["bench", "--output", f"{__file__}/x.json"], "is a file, not a folder"),
    ],
)
def test_bad_options_are_usage_errors(argv, message, capsys):
    # Rejected when the options are read (exit status 2, argparse's usage
    # error), not with a traceback after the work.
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, message",
    [("figure", "has no extension"), ("figure.xyz", "cannot write .xyz files")],
)
def test_plot_format_is_checked_before_fitting(tmp_path, capsys, name, message):
    # matplotlib appended .png to a name without extension (and the demo
    # named the file it did not write), and failed on an unknown one with a
    # traceback once every model was fitted.
    pytest.importorskip("matplotlib")
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--dataset", "iris", "--plot", str(tmp_path / name)])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""  # nothing was fitted
    assert list(tmp_path.iterdir()) == []  # nor left behind by the check


def test_pgf_needs_its_tex_program(tmp_path, capsys, monkeypatch):
    # matplotlib lists .pgf, but writes it with a TeX program: without one
    # the demo failed with a traceback once every model was fitted.
    pytest.importorskip("matplotlib")
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--dataset", "iris", "--plot", str(tmp_path / "f.pgf")])
    assert exc.value.code == 2
    assert "which is not installed" in capsys.readouterr().err


def test_closed_output_pipe_ends_without_traceback():
    # ``| head -1``: the progress lines met a closed pipe and the demo ended
    # in a BrokenPipeError traceback.
    command = [sys.executable, "-m", "sk_softmax", "demo", "--dataset", "iris"]
    command += ["--progress", "lines", "--progress-interval", "0"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        process.stdout.readline()
        process.stdout.close()
        stderr = process.stderr.read()
        process.wait()
    assert "Traceback" not in stderr, stderr
    assert "BrokenPipeError" not in stderr, stderr


def test_output_that_is_a_folder_is_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--plot", str(tmp_path)])
    assert exc.value.code == 2
    assert "is a folder" in capsys.readouterr().err


def test_version(capsys):
    from sk_softmax import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"sk-softmax {__version__}"
