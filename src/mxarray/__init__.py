"""mxarray: Microscaling (MX) block formats as a first-class array type.

Quantize NumPy arrays into the OCP MX formats (MXFP8, MXFP6, MXFP4, MXINT8) with real
packed storage, dequantize them exactly, and multiply them, on interchangeable backends.
Every numeric fact comes from the machine-readable specification in ``spec/mx.toml``.

``mxarray`` is also an array API namespace (standard version 2024.12, with the ``linalg``
extension): ``mxarray.asarray``, ``mxarray.sum``, ``mxarray.float32`` ... work as the
standard says, and the MX formats (``mxarray.mxfp4_e2m1`` ...) are extra dtypes.  See
docs/array_api.md.
"""

from .array import MXArray
from .backends import (BackendInfo, get_backend, list_backends, register_backend, set_backend,
                       use_backend)
from .core import dequantize, quantize
from .diagnostics import block_stats, explain
from .interop import dlpack_parts, from_ml_dtypes, from_torch, to_ml_dtypes, to_torch
from .io import load, save
from .formats import (
    BLOCK_FORMATS,
    BLOCK_SIZE,
    FORMATS,
    ROUNDING_MODES,
    SCALE_MODES,
    SPEC_VERSION,
    Format,
    get_format,
)

from . import _namespace
from ._namespace import *  # noqa: F403 - the array API namespace (matmul included)

__version__ = "0.1.0"
__array_api_version__ = "2024.12"

# One module attribute per built-in format of the spec: mxarray.mxfp4_e2m1, mxarray.mx9,
# mxarray.nvfp4, ...  Formats registered at run time: mxarray.get_format(name).
globals().update(BLOCK_FORMATS)

__all__ = [
    "MXArray",
    "Format",
    "BackendInfo",
    "BLOCK_FORMATS",
    "BLOCK_SIZE",
    "FORMATS",
    "ROUNDING_MODES",
    "SCALE_MODES",
    "SPEC_VERSION",
    "block_stats",
    "dequantize",
    "dlpack_parts",
    "explain",
    "from_ml_dtypes",
    "from_torch",
    "get_backend",
    "get_format",
    "list_backends",
    "load",
    "quantize",
    "register_backend",
    "save",
    "set_backend",
    "to_ml_dtypes",
    "to_torch",
    "use_backend",
    *BLOCK_FORMATS,
    *_namespace.__all__,
]
