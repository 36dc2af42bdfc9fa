"""The array API namespace of mxarray (standard version 2024.12, plus MX dtypes).

Modules, one job each: dtypes and promotion (``_dtypes``), the dense Array
(``_array``), argument handling (``_operands``), creation (``_creation``),
element-wise functions (``_elementwise``), reductions (``_statistics``), manipulation
(``_manipulation``), searching/sorting/sets (``_searching``), indexing
(``_indexing``), linear algebra (``_linalg``), ``__array_namespace_info__``
(``_info``), and the MX extension: conversion (``_mx_convert``), the structural
operations that keep MX storage (``_mx_structural``), assignment (``_mx_setitem``) and
what MXArray gets from the namespace: operators, indexing, methods (``_mx_methods``,
installed on import).
"""

from __future__ import annotations

import math as _math

from ._array import Array
from ._creation import (arange, asarray, astype, empty, empty_like, eye, from_dlpack, full,
                        full_like, linspace, meshgrid, ones, ones_like, tril, triu, zeros,
                        zeros_like)
from ._device import Device
from ._dtypes import (bool, can_cast, complex64, complex128, finfo, float32, float64, iinfo,
                      int8, int16, int32, int64, is_mx_dtype, isdtype, result_type, uint8,
                      uint16, uint32, uint64)
from . import _elementwise
from ._elementwise import *  # noqa: F403 - the table-built functions
from ._elementwise import bitwise_left_shift, bitwise_right_shift, clip
from ._indexing import take, take_along_axis
from ._info import __array_namespace_info__
from ._fft import fft
from ._linalg import linalg, matmul, tensordot, vecdot
from ._warnings import BlockAxisWarning
from ._manipulation import (broadcast_arrays, broadcast_to, concat, expand_dims, flip,
                            matrix_transpose, moveaxis, permute_dims, repeat, reshape, roll,
                            squeeze, stack, tile, unstack)
from ._searching import (argmax, argmin, argsort, nonzero, searchsorted, sort, unique_all,
                         unique_counts, unique_inverse, unique_values, where)
from ._statistics import (all, any, count_nonzero, cumulative_prod, cumulative_sum, diff, max,
                          mean, min, prod, std, sum, var)
from . import _mx_methods  # noqa: F401 - installs MXArray's operators, indexing, methods

__array_api_version__ = "2024.12"

e = _math.e
pi = _math.pi
inf = _math.inf
nan = _math.nan
newaxis = None

__all__ = [
    "Array", "Device", "__array_namespace_info__", "__array_api_version__", "is_mx_dtype",
    "e", "pi", "inf", "nan", "newaxis", "linalg", "fft", "BlockAxisWarning",
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "complex64", "complex128",
    "can_cast", "finfo", "iinfo", "isdtype", "result_type",
    "arange", "asarray", "astype", "empty", "empty_like", "eye", "from_dlpack", "full",
    "full_like", "linspace", "meshgrid", "ones", "ones_like", "tril", "triu", "zeros",
    "zeros_like", "bitwise_left_shift", "bitwise_right_shift", "clip", "take",
    "take_along_axis", "matmul", "tensordot", "vecdot", "broadcast_arrays", "broadcast_to",
    "concat", "expand_dims", "flip", "matrix_transpose", "moveaxis", "permute_dims", "repeat",
    "reshape", "roll", "squeeze", "stack", "tile", "unstack", "argmax", "argmin", "argsort",
    "nonzero", "searchsorted", "sort", "unique_all", "unique_counts", "unique_inverse",
    "unique_values", "where", "all", "any", "count_nonzero", "cumulative_prod",
    "cumulative_sum", "diff", "max", "mean", "min", "prod", "std", "sum", "var",
]
__all__ += [name for name in _elementwise.__all__ if name not in __all__]
