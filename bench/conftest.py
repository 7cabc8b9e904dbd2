"""Benchmarks: pytest-benchmark suites. Every benchmark checks its result, so a fast wrong kernel fails.

    pytest bench --benchmark-only                    # timings
    pytest bench --benchmark-disable                 # smoke test (CI): run each once, check results
"""
