"""Automatic differentiation: reverse mode (`grad`, `Lop`), forward mode (`Rop`), Jacobians,
Hessians, gradient-shaping helpers, and the finite-difference checker `verify_grad`."""

from .grad import DISCONNECTED, NullGrad, grad, grad_undefined
from .jacobian import hessian, hessian_vector_product, hvp, jacobian
from .linear import Lop, Rop
from .ops import disconnected_grad, grad_clip, grad_scale, stop_gradient, zero_grad
from .verify import verify_grad

__all__ = ["grad", "Lop", "Rop", "jacobian", "hessian", "hessian_vector_product", "hvp",
           "verify_grad", "stop_gradient", "disconnected_grad", "zero_grad", "grad_clip",
           "grad_scale", "NullGrad", "grad_undefined", "DISCONNECTED"]
