"""Robustness: fuzzing of everything a client or an operator types, and the daemon under abuse.

The in-process fuzz tests run ``TRM_FUZZ_EXAMPLES`` hypothesis examples
each (a CI-sized default); the daemon tests fire mutated requests at the
real process. Longer runs (overload, soak, crash loop) live in
``benchmarks/`` and record their figures in ``benchmarks/RESULTS.md``.
"""
