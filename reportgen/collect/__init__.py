"""`reportgen collect`: run a model on benchmark items, pin each failure to the token pair where
one alternative token recovers it (strict recovery), and write the pairs as case files."""

from .benchmarks import Benchmark, Item, Verdict
from .registry import BENCHMARKS, get_benchmark, register

__all__ = ["BENCHMARKS", "Benchmark", "Item", "Verdict", "get_benchmark", "register"]
