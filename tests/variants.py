"""The kernel variants a test must run: every one this CPU can run, not only those the dispatch picks.

The dispatch runs one variant per operation and ISA path; some variants are picked by no path on a given CPU
(the vpshufb 4-bit scan where AVX-512 VBMI exists, the AVX2 8-bit group scan under avx512vnni with VBMI).
Tests loop over ``runnable_variants(op)`` and pin each with ``medqk.use_kernel(op, name)``; the GEMM, whose
packed layout belongs to its ISA, is run per ISA with ``medqk.use_isa``.
"""

from __future__ import annotations

import medqk


def runnable_variants(op: str) -> list[str]:
    """Names of the variants of kernel operation ``op`` this CPU can run, best first ([] without native)."""
    return [v["name"] for v in medqk.kernel_variants().get(op, []) if v["runnable"]]


def pinned_variant_fixture(op: str):
    """A pytest fixture running its test once per variant of ``op`` this CPU runs (pinned with use_kernel on the
    native backend) and once on the Numba twin (skipped with the reason where numba is missing); it yields the
    variant's name, or "numba"."""
    import pytest

    from tests.twins import NUMBA_MISSING

    try:
        import numba  # noqa: F401

        have_numba = True
    except ImportError:
        have_numba = False
    params = [pytest.param(v, id=f"native-{v}") for v in runnable_variants(op)]
    params.append(pytest.param("numba", id="numba", marks=pytest.mark.skipif(not have_numba, reason=NUMBA_MISSING)))

    @pytest.fixture(params=params)
    def variant(request):
        if request.param == "numba":
            with medqk.use_backend("numba"):
                yield "numba"
        else:
            with medqk.use_backend("native"), medqk.use_kernel(op, request.param):
                yield request.param

    return variant
