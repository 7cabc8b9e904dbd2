"""Shared fixtures: every test that takes ``backend`` runs once per native ISA and once on Numba."""

from __future__ import annotations

import importlib.util

import pytest

import medqk

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
NATIVE = medqk.info()["native_available"]


def _backend_params():
    params = [pytest.param(("native", isa), id=f"native-{isa}") for isa in medqk.available_isas()]
    params.append(
        pytest.param(
            ("numba", None),
            id="numba",
            marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed"),
        )
    )
    return params


@pytest.fixture(params=_backend_params())
def backend(request):
    """Selects (backend, ISA) for the duration of one test; yields a readable id."""
    name, isa = request.param
    with medqk.use_backend(name):
        if isa is None:
            yield name
        else:
            with medqk.use_isa(isa):
                yield f"{name}-{isa}"
