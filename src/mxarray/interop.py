"""Hand MX data to other libraries: ml_dtypes arrays, DLPack, and PyTorch tensors.

Nothing here converts values: every function moves or reinterprets the stored bytes,
so a round trip gives back the same bytes.

PyTorch layout (what :func:`to_torch` returns and :func:`from_torch` reads) follows
torchao's ``MXTensor`` (``qdata``, ``scale``) for data blocked along the last axis:

=============  ==========================================  ==============================
format         data tensor                                 shape
=============  ==========================================  ==============================
mxfp8_*        ``torch.float8_e4m3fn`` / ``float8_e5m2``   ``lead + (padded,)``
mxfp4_e2m1     ``torch.float4_e2m1fn_x2``: element 2i in   ``lead + (padded // 2,)``
               the low nibble, 2i+1 in the high nibble
mxfp6_*        ``torch.uint8``, one code per byte (torch   ``lead + (padded,)``
               has no 6-bit dtype; torchao keeps FP6
               unpacked the same way)
mxint8         ``torch.int8`` (the value is ``k / 64``)    ``lead + (padded,)``
scales         ``torch.float8_e8m0fnu`` (or ``uint8``)     ``lead + (n_blocks,)``
=============  ==========================================  ==============================

``lead`` is the logical shape without the block axis and ``padded`` the block-axis
length rounded up to a whole number of blocks: the block axis is always innermost,
as torch's scaled matmuls expect.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from . import layout as blocks
from ._device_arrays import device_name, is_device_array
from ._spec import load_spec
from .array import MXArray
from .backends import get_backend
from .formats import Format, get_format

__all__ = ["to_ml_dtypes", "from_ml_dtypes", "dlpack_parts", "to_torch", "from_torch"]

_SCALE_ML_DTYPE: str = load_spec()["scale"]["ml_dtypes"]


def _import(name: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"{purpose} needs the {name} package: pip install {name}") from err


def _element_dtype(fmt: Format) -> np.dtype:
    if not fmt.ml_dtypes:
        raise ValueError(
            f"{fmt.name} has no ml_dtypes element type: its codes are two's-complement "
            "integers k with value k / 2**mantissa_bits; use a.codes().view(numpy.int8)"
        )
    return np.dtype(getattr(_import("ml_dtypes", "viewing MX codes as ml_dtypes"), fmt.ml_dtypes))


def _host(a: MXArray, what: str) -> None:
    if is_device_array(a.packed):
        raise TypeError(
            f"{what} works on host data, but this MXArray lives on {device_name(a.packed)}; "
            "use a.to_device('cpu') first"
        )


def to_ml_dtypes(a: MXArray) -> tuple[np.ndarray, np.ndarray]:
    """Return the element codes and the scales of ``a`` as ml_dtypes arrays.

    The codes are reinterpreted, not converted: ``elements`` has ``a.shape`` and the
    format's ml_dtypes type (``float8_e4m3fn``, ``float8_e5m2``, ``float6_e3m2fn``,
    ``float6_e2m3fn`` or ``float4_e2m1fn``); ``scales`` is ``a.scales`` viewed as
    ``float8_e8m0fnu``.  ``elements * scales`` (repeated along the block axis) are
    the dequantized values.

    Raises
    ------
    ValueError
        For ``mxint8``, which has no ml_dtypes element type (its ``int8`` codes ``k``
        mean ``k / 64``: use ``a.codes().view(numpy.int8)``).
    TypeError
        If ``a`` is not an MXArray or lives on a GPU.
    ImportError
        If ml_dtypes is not installed.

    Examples
    --------
    >>> import numpy as np, mxarray
    >>> from mxarray.interop import to_ml_dtypes
    >>> a = mxarray.quantize(np.array([1.5, -6.0, 12.0]), "mxfp4_e2m1")
    >>> elements, scales = to_ml_dtypes(a)
    >>> elements.dtype.name, scales.dtype.name
    ('float4_e2m1fn', 'float8_e8m0fnu')
    >>> elements.astype(np.float32) * scales.astype(np.float32)   # 1.5 / 2 ties to even: 1
    array([ 2., -6., 12.], dtype=float32)
    """
    if not isinstance(a, MXArray):
        raise TypeError(f"a must be an MXArray, not {type(a).__name__}")
    _host(a, "to_ml_dtypes")
    element = _element_dtype(a.format)
    scale = np.dtype(getattr(_import("ml_dtypes", "viewing MX scales"), _SCALE_ML_DTYPE))
    return a.codes().view(element), np.ascontiguousarray(a.scales).view(scale)


def from_ml_dtypes(
    elements: np.ndarray, scales: np.ndarray, fmt: str | Format, *, axis: int = -1
) -> MXArray:
    """Build an MXArray from ml_dtypes element codes and E8M0 scales (the inverse of
    :func:`to_ml_dtypes`).

    Parameters
    ----------
    elements : ndarray
        The element codes in the logical shape, of the format's ml_dtypes type.
    scales : ndarray
        ``float8_e8m0fnu`` (or ``uint8``) scales: the logical shape with the block axis
        replaced by its block count.
    fmt : str or Format
    axis : int, optional
        The block axis (default the last).

    Raises
    ------
    TypeError
        If a dtype does not match the format.
    ValueError
        If a shape does not match, or the format has no ml_dtypes element type.

    Examples
    --------
    >>> import numpy as np, ml_dtypes, mxarray
    >>> from mxarray.interop import from_ml_dtypes
    >>> e = np.array([1.0, -0.5], dtype=ml_dtypes.float4_e2m1fn)
    >>> s = np.array([2.0], dtype=ml_dtypes.float8_e8m0fnu)
    >>> from_ml_dtypes(e, s, "mxfp4_e2m1").dequantize()
    array([ 2., -1.], dtype=float32)
    """
    fmt = get_format(fmt)
    element = _element_dtype(fmt)
    elements, scales = np.asarray(elements), np.asarray(scales)
    if elements.dtype != element:
        raise TypeError(f"elements must have dtype {element.name} for {fmt.name}, "
                        f"got {elements.dtype}")
    if scales.dtype.name not in (_SCALE_ML_DTYPE, "uint8"):
        raise TypeError(f"scales must have dtype {_SCALE_ML_DTYPE} or uint8, got {scales.dtype}")
    return MXArray.from_parts(elements.view(np.uint8), scales.view(np.uint8), fmt,
                              elements.shape, axis=axis, layout="codes")


def dlpack_parts(a: MXArray) -> tuple[Any, Any]:
    """Return ``(a.packed, a.scales)`` as arrays that support the DLPack protocol.

    Both are uint8 arrays of the storage's kind (NumPy on the host, CuPy on a GPU), so
    any DLPack consumer (``numpy.from_dlpack``, ``torch.from_dlpack``,
    ``cupy.from_dlpack``, JAX ...) takes them without a copy.  ``packed`` is in the
    canonical layout (block axis innermost, padded, packed); ``scales`` has the logical
    shape with the block axis replaced by its block count.  Both are read-only views:
    a consumer must not write through them.

    Examples
    --------
    >>> import numpy as np, mxarray
    >>> from mxarray.interop import dlpack_parts
    >>> a = mxarray.quantize(np.ones((2, 64)), "mxfp4_e2m1")
    >>> packed, scales = dlpack_parts(a)
    >>> np.from_dlpack(packed).shape, np.from_dlpack(scales).shape
    ((2, 32), (2, 2))
    """
    if not isinstance(a, MXArray):
        raise TypeError(f"a must be an MXArray, not {type(a).__name__}")
    return a.packed, a.scales


def _torch() -> ModuleType:
    return _import("torch", "to_torch / from_torch")


def _torch_holds_packed(fmt: Format) -> bool:
    """Whether torch stores ``fmt`` as its packed bytes (else one code per byte)."""
    return fmt.layout.elements == 1 or fmt.layout.name == "fp4_nibble"


def _torch_data_dtype(fmt: Format, torch: ModuleType) -> Any:
    """The torch dtype of the data tensor for ``fmt`` (see the module docstring)."""
    if fmt.layout.name == "fp4_nibble":
        return torch.float4_e2m1fn_x2
    if not _torch_holds_packed(fmt):
        return torch.uint8  # unpacked codes: torch has no dtype for this width
    if fmt.kind == "int":
        return torch.int8
    return getattr(torch, fmt.ml_dtypes)


def _canonical_codes(a: MXArray) -> Any:
    """Element codes in the canonical layout: lead + (padded,), one byte each."""
    backend = get_backend("cupy" if is_device_array(a.packed) else "numpy")
    return backend.unpack(a.packed, a.format)


def _as_tensor(arr: Any, torch: ModuleType) -> Any:
    """A torch tensor owning a copy of ``arr`` (host or GPU), uint8."""
    if is_device_array(arr):
        return torch.from_dlpack(arr.copy())
    return torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True))


def to_torch(a: MXArray, *, scale_dtype: str = "e8m0") -> tuple[Any, Any]:
    """Return ``(data, scales)`` torch tensors holding the bytes of ``a`` as torch does.

    See the module docstring for the dtype and shape of each format.  The tensors own
    copies of the bytes and live on the array's device (CPU, or the same CUDA device).

    Parameters
    ----------
    a : MXArray
    scale_dtype : {"e8m0", "uint8"}, optional
        ``torch.float8_e8m0fnu`` scales (default) or the raw ``torch.uint8`` bytes.

    Raises
    ------
    TypeError
        If ``a`` is not an MXArray.
    ValueError
        If ``scale_dtype`` is unknown.
    ImportError
        If torch is not installed.

    Examples
    --------
    >>> import numpy as np, pytest, mxarray
    >>> torch = pytest.importorskip("torch", reason="this example needs torch installed")
    >>> from mxarray.interop import to_torch
    >>> data, scales = to_torch(mxarray.quantize(np.ones((4, 64)), "mxfp4_e2m1"))
    >>> data.dtype, tuple(data.shape), scales.dtype, tuple(scales.shape)
    (torch.float4_e2m1fn_x2, (4, 32), torch.float8_e8m0fnu, (4, 2))
    """
    if not isinstance(a, MXArray):
        raise TypeError(f"a must be an MXArray, not {type(a).__name__}")
    if scale_dtype not in ("e8m0", "uint8"):
        raise ValueError(f"scale_dtype must be 'e8m0' or 'uint8', got {scale_dtype!r}")
    torch = _torch()
    fmt = a.format
    raw = a.packed if _torch_holds_packed(fmt) else _canonical_codes(a)
    data = _as_tensor(raw, torch).view(_torch_data_dtype(fmt, torch))
    scales = _as_tensor(_scales_block_axis_last(a), torch)
    if scale_dtype == "e8m0":
        scales = scales.view(torch.float8_e8m0fnu)
    return data, scales


def _scales_block_axis_last(a: MXArray) -> Any:
    """``a.scales`` with the block axis moved last: lead + (n_blocks,)."""
    xp = get_backend("cupy").xp if is_device_array(a.packed) else np
    return xp.ascontiguousarray(xp.moveaxis(a.scales, a.block_axis, -1))


def from_torch(
    data: Any,
    scales: Any,
    fmt: str | Format,
    *,
    shape: tuple[int, ...] | None = None,
    axis: int = -1,
    rounding: str | None = None,
    scale_mode: str | None = None,
) -> MXArray:
    """Build an MXArray from torch tensors in the layout of :func:`to_torch`.

    The bytes are copied unchanged, so ``from_torch(*to_torch(a), a.format,
    shape=a.shape, axis=a.block_axis)`` reproduces ``a.packed`` and ``a.scales``.

    Parameters
    ----------
    data, scales : torch.Tensor
        The data tensor (its torch dtype as in the module docstring, or ``torch.uint8``
        holding the same bytes) and the scales (``float8_e8m0fnu`` or ``uint8``), both
        with the block axis innermost.
    fmt : str or Format
    shape : tuple of int, optional
        The logical shape.  By default the block axis has the full padded length.
    axis : int, optional
        Where the block axis goes in the logical shape (default the last).
    rounding, scale_mode : str, optional
        Recorded metadata.

    Returns
    -------
    MXArray
        On the host; move it with :meth:`MXArray.to_device` (tensors on a GPU are
        copied to the host first).

    Raises
    ------
    TypeError
        If a tensor has the wrong dtype or is not a tensor.
    ValueError
        If the shapes do not fit the format, or the padding holds non-zero codes.

    Examples
    --------
    >>> import pytest, mxarray
    >>> torch = pytest.importorskip("torch", reason="this example needs torch installed")
    >>> from mxarray.interop import from_torch
    >>> raw = torch.zeros((1, 16), dtype=torch.uint8)    # one padded block of 32 codes
    >>> raw[0, :2] = torch.tensor([0x42, 0x0B])            # codes 2, 4, 0xB, 0: 1, 2, -1.5, 0
    >>> scales = torch.tensor([[128]], dtype=torch.uint8)  # 2**1
    >>> data = raw.view(torch.float4_e2m1fn_x2)
    >>> from_torch(data, scales, "mxfp4_e2m1", shape=(1, 4)).dequantize()
    array([[ 2.,  4., -3.,  0.]], dtype=float32)
    """
    torch = _torch()
    fmt = get_format(fmt)
    if not isinstance(data, torch.Tensor) or not isinstance(scales, torch.Tensor):
        raise TypeError("data and scales must be torch tensors")
    want = _torch_data_dtype(fmt, torch)
    if data.dtype not in (want, torch.uint8):
        raise TypeError(f"data must have dtype {want} (or torch.uint8) for {fmt.name}, "
                        f"got {data.dtype}")
    if scales.dtype not in (torch.float8_e8m0fnu, torch.uint8):
        raise TypeError(f"scales must have dtype torch.float8_e8m0fnu or torch.uint8, "
                        f"got {scales.dtype}")
    if data.ndim == 0 or scales.ndim != data.ndim:
        raise ValueError(f"data and scales must have the same number (>= 1) of dimensions, "
                         f"got shapes {tuple(data.shape)} and {tuple(scales.shape)}")
    raw = _host_bytes(data, torch)
    scale_bytes = _host_bytes(scales, torch)
    packed = _torch_holds_packed(fmt)
    per_element_codes = raw.shape[-1] * (fmt.layout.elements if packed else 1)
    ax = blocks.normalize_axis(axis, raw.ndim)
    if shape is None:
        lead = raw.shape[:-1]
        shape = lead[:ax] + (per_element_codes,) + lead[ax:]
    if not packed:  # one code per byte: pack into the format's layout
        if per_element_codes % fmt.block_size:
            raise ValueError(f"the innermost length of data ({per_element_codes}) must be a "
                             "multiple of "
                             f"the block size {fmt.block_size} for {fmt.name}")
        if np.any(raw >= fmt.n_codes):
            raise ValueError(f"data holds codes out of range for {fmt.name} "
                             f"({fmt.bits}-bit codes must be < {fmt.n_codes})")
        raw = get_backend("numpy").pack(raw, fmt)
    return MXArray.from_parts(raw, np.moveaxis(scale_bytes, -1, ax), fmt, tuple(shape),
                              axis=ax, layout="packed", rounding=rounding,
                              scale_mode=scale_mode)


def _host_bytes(t: Any, torch: ModuleType) -> np.ndarray:
    """The bytes of a torch tensor as a C-contiguous NumPy uint8 array of the same shape."""
    return t.detach().contiguous().view(torch.uint8).cpu().numpy()
