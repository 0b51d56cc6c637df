"""The C backend: elementwise programs and reductions compiled to C through cffi, cached on
disk, run by a flat schedule that falls back to numpy `perform` for the other Ops
(`linker.link_c`, imported when first used: `tracesym.backend.link_c`)."""
