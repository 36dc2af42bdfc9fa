"""The Numba backend (registry name ``"numba"``): exact parallel CPU kernels.

Modules
-------
backend
    :class:`NumbaBackend`, the contract's methods routed to kernel families.
families
    One kernel family per kind of format (OCP; power-of-two scales with sub-blocks;
    UE4M3 scales with a tensor scale) behind one interface.
params
    Kernel parameters as named records derived from a format.
bits
    Exact integer arithmetic on IEEE bit patterns shared by every kernel.
ocp_kernels
    The OCP formats' lane-parallel kernels.
pow2_kernels
    Kernels generated per format for the general block formats.
block_kernels
    Kernels generic over every registrable format (any input, any rounding).
matmul
    The MX matmul driver: decoded K-panels into an accumulating BLAS GEMM.
threads
    Safe parallel launches from many Python threads.
"""

from .backend import NumbaBackend

__all__ = ["NumbaBackend"]
