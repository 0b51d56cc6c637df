"""Tensor constructors: `full zeros ones full_like zeros_like ones_like arange eye`."""

from __future__ import annotations

import numpy as np

from ..trace.graph import as_variable
from .elemwise import cast
from .shape import broadcast_to, shape


def full_like(x, fill_value, dtype=None):
    """A tensor of `x`'s shape filled with `fill_value` (dtype: `dtype`, else `x`'s)."""
    x = as_variable(x)
    dtype = np.dtype(dtype or x.dtype).name
    return broadcast_to(as_variable(np.asarray(fill_value, dtype=dtype)), shape(x))


__all__ = ["full_like"]
