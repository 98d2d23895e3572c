"""Fixtures shared by the test modules."""

import pytest


@pytest.fixture
def dominance_checks(monkeypatch):
    """The calls of fit's check that no row dominates a feature.

    A list that grows by one item at each call of ``dominant_rows`` by the
    estimator, which the check still answers.
    """
    import sk_softmax._softmax as module

    calls = []
    original = module.dominant_rows

    def recording(*args, **kwargs):
        calls.append(True)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "dominant_rows", recording)
    return calls
