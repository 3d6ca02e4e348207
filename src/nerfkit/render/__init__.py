"""Volume rendering and samplers."""

from .compositing import (accumulate_packed, composite_batched, composite_packed, weights_batched,
                          weights_packed)
from .samplers import intervals, sample_pdf, stratified

__all__ = ["weights_batched", "weights_packed", "composite_batched", "composite_packed", "accumulate_packed",
           "stratified", "intervals", "sample_pdf"]
