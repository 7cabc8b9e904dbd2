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
