"""Faithfulness of an input attribution (docs/method.md section 8): the masking flip test and
deletion curves against gradient and random baselines (``deletion``), scored on masked copies of
the input (``scoring``), within a budget for long inputs (``budget``); and the URT/OIT failure
pattern of cases with relevant spans (``pattern``)."""

from .deletion import ORDERINGS, faithfulness
from .masking import MASKS
from .pattern import failure_pattern

__all__ = ["MASKS", "ORDERINGS", "failure_pattern", "faithfulness"]
