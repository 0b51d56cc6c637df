"""The C backend: elementwise programs and reductions compiled to C through cffi, cached on
disk, run by a flat schedule that falls back to numpy `perform` for the other Ops."""

from .linker import link_c

__all__ = ["link_c"]
