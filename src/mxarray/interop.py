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
mx9/mx6/mx4    one unpacked code per element (element      ``lead + (padded,)``
               bits, microexponent above them):
               ``torch.uint16`` for mx9, ``uint8`` else
nvfp4          as mxfp4_e2m1 (16-element blocks)           ``lead + (padded // 2,)``
scales         ``torch.float8_e8m0fnu``; UE4M3 scales      ``lead + (n_blocks,)``
               (nvfp4) ``torch.float8_e4m3fn``; or
               ``uint8``
=============  ==========================================  ==============================

``lead`` is the logical shape without the block axis and ``padded`` the block-axis
length rounded up to a whole number of blocks: the block axis is always innermost,
as torch's scaled matmuls expect.  A per-tensor scale (nvfp4) is a number, not bytes:
read it from ``a.tensor_scale`` and give it back to :func:`from_torch` as
``tensor_scale=``.
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

__all__ = ["to_ml_dtypes", "from_ml_dtypes", "dlpack_parts", "to_torch", "from_torch",
           "dequantize_torch", "torch_to_numpy"]

_SCALE_ML_DTYPE: str = load_spec()["scale"]["ml_dtypes"]
# ml_dtypes (and torch) type of each scale format's bytes; UE4M3 codes are the
# non-negative E4M3 codes, with the same NaN (0x7F)
_SCALE_ML_DTYPES = {"e8m0": _SCALE_ML_DTYPE, "ue4m3": "float8_e4m3fn"}


def _import(name: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"{purpose} needs the {name} package: pip install {name}") from err


def _element_dtype(fmt: Format) -> np.dtype:
    if not fmt.ml_dtypes:
        if fmt.kind == "int" and fmt.bits == 8:
            hint = ("its codes are two's-complement integers k with value "
                    "k / 2**mantissa_bits; use a.codes().view(numpy.int8)")
        else:
            hint = (f"its {fmt.element} codes"
                    + (" carry sub-block microexponents" if fmt.sub_block_size else "")
                    + "; use a.codes() and a.format.decode")
        raise ValueError(f"{fmt.name} has no ml_dtypes element type: {hint}")
    return np.dtype(getattr(_import("ml_dtypes", "viewing MX codes as ml_dtypes"), fmt.ml_dtypes))


def _scale_dtype_name(fmt: Format) -> str:
    """The ml_dtypes / torch name of ``fmt``'s scale bytes (ValueError if none)."""
    name = _SCALE_ML_DTYPES.get(fmt.scale.name)
    if name is None:
        raise ValueError(f"{fmt.name} has {fmt.scale.name} scales, which have no ml_dtypes "
                         "or torch type; use a.scales (uint8) and a.format.scale.decode")
    return name


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
    ``float8_e8m0fnu`` (``float8_e4m3fn`` for the UE4M3 scales of nvfp4).
    ``elements * scales`` (repeated along the block axis, and times ``a.tensor_scale``
    for nvfp4) are the dequantized values.

    Raises
    ------
    ValueError
        For formats without an ml_dtypes element type: ``mxint8`` (its ``int8`` codes
        ``k`` mean ``k / 64``: use ``a.codes().view(numpy.int8)``) and the
        sign-magnitude formats with microexponents (mx9, mx6, mx4).
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
    scale = np.dtype(getattr(_import("ml_dtypes", "viewing MX scales"),
                             _scale_dtype_name(a.format)))
    return a.codes().view(element), np.ascontiguousarray(a.scales).view(scale)


def from_ml_dtypes(
    elements: np.ndarray, scales: np.ndarray, fmt: str | Format, *, axis: int = -1,
    tensor_scale: float | None = None,
) -> MXArray:
    """Build an MXArray from ml_dtypes element codes and E8M0 scales (the inverse of
    :func:`to_ml_dtypes`).

    Parameters
    ----------
    elements : ndarray
        The element codes in the logical shape, of the format's ml_dtypes type.
    scales : ndarray
        ``float8_e8m0fnu`` (``float8_e4m3fn`` for nvfp4) or ``uint8`` scales: the
        logical shape with the block axis replaced by its block count.
    fmt : str or Format
    axis : int, optional
        The block axis (default the last).
    tensor_scale : float, optional
        The per-tensor scale, required for formats that have one (nvfp4).

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
    if scales.dtype != np.uint8 and scales.dtype.name != _scale_dtype_name(fmt):
        raise TypeError(f"scales must have dtype {_scale_dtype_name(fmt)} or uint8 for "
                        f"{fmt.name}, got {scales.dtype}")
    return MXArray.from_parts(elements.view(np.uint8), scales.view(np.uint8), fmt,
                              elements.shape, axis=axis, layout="codes",
                              tensor_scale=tensor_scale)


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
    """Whether torch stores ``fmt`` as its packed bytes (else one code per element)."""
    return not fmt.sub_block_size and (fmt.layout.elements == 1
                                       or fmt.layout.name == "fp4_nibble")


def _torch_data_dtype(fmt: Format, torch: ModuleType) -> Any:
    """The torch dtype of the data tensor for ``fmt`` (see the module docstring)."""
    if fmt.layout.name == "fp4_nibble" and not fmt.sub_block_size:
        return torch.float4_e2m1fn_x2
    if not _torch_holds_packed(fmt) or not (fmt.ml_dtypes or fmt.kind == "int"):
        # unpacked codes (torch has no dtype for them): uint8, or uint16 above 8 bits
        return torch.uint8 if fmt.code_dtype == np.uint8 else torch.uint16
    if fmt.kind == "int":
        return torch.int8
    return getattr(torch, fmt.ml_dtypes)


def _torch_scale_dtype(fmt: Format, torch: ModuleType) -> Any:
    """The torch float8 dtype of ``fmt``'s scale bytes."""
    return getattr(torch, _scale_dtype_name(fmt))


def _canonical_codes(a: MXArray) -> Any:
    """Element codes in the canonical layout: lead + (padded,), one code each."""
    backend = get_backend("cupy" if is_device_array(a.packed) else "numpy")
    return backend.unpack(a.packed, a.format)


def _as_tensor(arr: Any, torch: ModuleType) -> Any:
    """A torch tensor owning a copy of ``arr`` (host or GPU), of the same integer dtype."""
    if is_device_array(arr):
        return torch.from_dlpack(arr.copy())
    return torch.from_numpy(np.array(arr, copy=True))


def to_torch(a: MXArray, *, scale_dtype: str = "float8", dtype: Any = None) -> Any:
    """Return ``(data, scales)`` torch tensors holding the bytes of ``a`` as torch does, or
    with ``dtype``, the values of ``a`` as one dense torch tensor.

    See the module docstring for the dtype and shape of each format.  The tensors own
    copies of the bytes and live on the array's device (CPU, or the same CUDA device).
    A per-tensor scale (nvfp4) is not among them: it is ``a.tensor_scale``.

    Parameters
    ----------
    a : MXArray
    scale_dtype : {"float8", "uint8"}, optional
        Scales as the torch float8 type of the format's scale bytes (default:
        ``torch.float8_e8m0fnu``, or ``torch.float8_e4m3fn`` for nvfp4's UE4M3 scales)
        or as the raw ``torch.uint8`` bytes.
    dtype : torch.dtype, optional
        A torch floating dtype (``torch.bfloat16``, ``torch.float16``, ``torch.float32``
        ...): return the dequantized values in the logical shape instead, decoded in torch
        by :func:`dequantize_torch` (exact in float64, then rounded once to ``dtype``).

    Raises
    ------
    TypeError
        If ``a`` is not an MXArray or ``dtype`` is not a torch floating dtype.
    ValueError
        If ``scale_dtype`` is unknown, or is "float8" for a scale format torch has no
        type for.
    ImportError
        If torch is not installed.

    Examples
    --------
    >>> import numpy as np, pytest, mxarray
    >>> torch = pytest.importorskip("torch", reason="this example needs torch installed")
    >>> from mxarray.interop import to_torch
    >>> a = mxarray.quantize(np.ones((4, 64)), "mxfp4_e2m1")
    >>> data, scales = to_torch(a)
    >>> data.dtype, tuple(data.shape), scales.dtype, tuple(scales.shape)
    (torch.float4_e2m1fn_x2, (4, 32), torch.float8_e8m0fnu, (4, 2))
    >>> w = to_torch(a, dtype=torch.bfloat16)
    >>> w.dtype, tuple(w.shape), w[0, :3].tolist()
    (torch.bfloat16, (4, 64), [1.0, 1.0, 1.0])
    """
    if not isinstance(a, MXArray):
        raise TypeError(f"a must be an MXArray, not {type(a).__name__}")
    if scale_dtype not in ("float8", "uint8"):
        raise ValueError(f"scale_dtype must be 'float8' or 'uint8', got {scale_dtype!r}")
    torch = _torch()
    fmt = a.format
    scale_type = _torch_scale_dtype(fmt, torch) if scale_dtype == "float8" else torch.uint8
    raw = a.packed if _torch_holds_packed(fmt) else _canonical_codes(a)
    data = _as_tensor(raw, torch)
    want = _torch_data_dtype(fmt, torch)
    if data.dtype != want:
        data = data.view(want)
    scales = _as_tensor(_scales_block_axis_last(a), torch).view(scale_type)
    if dtype is None:
        return data, scales
    values = dequantize_torch(data, scales, fmt, dtype=dtype, tensor_scale=a.tensor_scale,
                              length=a.shape[a.block_axis])
    return values.movedim(-1, a.block_axis)


def dequantize_torch(data: Any, scales: Any, fmt: str | Format, *, dtype: Any = None,
                     tensor_scale: float | None = None, length: int | None = None) -> Any:
    """Decode MX tensors in the layout of :func:`to_torch` (torchao's) with torch operations,
    on the tensors' device (CPU or CUDA).

    Each value is ``decode(code) * scale`` (``* tensor_scale`` for nvfp4), computed
    exactly in float64 and rounded once to ``dtype``, as :func:`mxarray.dequantize` does;
    a block with a NaN scale is NaN.

    Parameters
    ----------
    data, scales : torch.Tensor
        As :func:`from_torch` takes them: the block axis innermost.
    fmt : str or Format
    dtype : torch.dtype, optional
        A floating dtype (default ``torch.float32``).
    tensor_scale : float, optional
        The per-tensor scale, required for formats that have one (nvfp4).
    length : int, optional
        The logical length of the block axis (default: the padded length).

    Returns
    -------
    torch.Tensor
        ``lead + (length,)``: the block axis innermost.

    Raises
    ------
    TypeError
        If a tensor has the wrong dtype or ``dtype`` is not floating.
    ValueError
        If the shapes do not fit, ``length`` is out of range, or ``tensor_scale`` is
        missing or not expected.

    Examples
    --------
    >>> import pytest
    >>> torch = pytest.importorskip("torch", reason="this example needs torch installed")
    >>> from mxarray.interop import dequantize_torch
    >>> raw = torch.zeros((1, 16), dtype=torch.uint8)
    >>> raw[0, :2] = torch.tensor([0x42, 0x0B])            # codes 2, 4, 0xB, 0: 1, 2, -1.5, 0
    >>> scales = torch.tensor([[128]], dtype=torch.uint8)  # 2**1
    >>> dequantize_torch(raw.view(torch.float4_e2m1fn_x2), scales, "mxfp4_e2m1", length=4)
    tensor([[ 2.,  4., -3.,  0.]])
    """
    torch = _torch()
    fmt = get_format(fmt)
    dtype = torch.float32 if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a torch floating dtype, got {dtype!r}")
    if not isinstance(data, torch.Tensor) or not isinstance(scales, torch.Tensor):
        raise TypeError("data and scales must be torch tensors")
    want = _torch_data_dtype(fmt, torch)
    if data.dtype not in ((want, torch.uint8) if want.itemsize == 1 else (want,)):
        raise TypeError(f"data must have dtype {want} for {fmt.name}, got {data.dtype}")
    if scales.dtype not in (torch.uint8, _torch_scale_dtype(fmt, torch)):
        raise TypeError(f"scales must have dtype {_torch_scale_dtype(fmt, torch)} or "
                        f"torch.uint8 for {fmt.name}, got {scales.dtype}")
    if fmt.tensor_scale != "none" and tensor_scale is None:
        raise ValueError(f"{fmt.name} needs its per-tensor scale (tensor_scale=...)")
    if fmt.tensor_scale == "none" and tensor_scale is not None:
        raise ValueError(f"{fmt.name} has no per-tensor scale; drop tensor_scale")
    codes = _torch_codes(data, fmt, torch)
    padded = codes.shape[-1]
    if (data.ndim == 0 or tuple(scales.shape) != tuple(codes.shape[:-1])
            + (padded // fmt.block_size,) or padded % fmt.block_size):
        raise ValueError(f"data {tuple(data.shape)} and scales {tuple(scales.shape)} do not "
                         f"fit {fmt.name} (blocks of {fmt.block_size}, innermost)")
    length = padded if length is None else length
    if not padded - fmt.block_size < length <= padded:
        raise ValueError(f"length must be in ({padded - fmt.block_size}, {padded}], got {length}")
    device = data.device
    table = torch.from_numpy(np.array(fmt.decode_table, dtype=np.float64)).to(device)
    scale_table = fmt.scale.decode(np.arange(256, dtype=np.uint8)).astype(np.float64)
    if tensor_scale is not None:
        scale_table = scale_table * np.float64(np.float32(tensor_scale))
    block = torch.from_numpy(scale_table).to(device)[scales.view(torch.uint8).long()]
    values = table[codes] * block.repeat_interleave(fmt.block_size, dim=-1)
    return values[..., :length].to(dtype)


def _torch_codes(data: Any, fmt: Format, torch: ModuleType) -> Any:
    """One int64 code per element of a :func:`to_torch` data tensor: lead + (padded,)."""
    if _torch_holds_packed(fmt) and fmt.layout.name == "fp4_nibble":
        raw = data.view(torch.uint8)
        return torch.stack([raw & 0x0F, raw >> 4], dim=-1).flatten(-2).long()
    if data.element_size() == 1:
        return data.view(torch.uint8).long()
    return data.to(torch.int64)


def torch_to_numpy(t: Any) -> np.ndarray:
    """A dense torch tensor's values as a NumPy array (on the host), ready for
    :func:`mxarray.quantize`: ``torch.bfloat16`` becomes ml_dtypes' ``bfloat16`` (the
    same bits; NumPy has no bfloat16 of its own), other dtypes their NumPy dtype.

    Examples
    --------
    >>> import pytest
    >>> torch = pytest.importorskip("torch", reason="this example needs torch installed")
    >>> from mxarray.interop import torch_to_numpy
    >>> x = torch_to_numpy(torch.tensor([1.5, -2.0], dtype=torch.bfloat16))
    >>> x.dtype.name, x.astype("float32").tolist()
    ('bfloat16', [1.5, -2.0])
    """
    torch = _torch()
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be a torch tensor, not {type(t).__name__}")
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        bf16 = _import("ml_dtypes", "torch bfloat16 tensors in NumPy").bfloat16
        return t.view(torch.int16).numpy().view(bf16)
    return t.numpy()


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
    tensor_scale: float | None = None,
) -> MXArray:
    """Build an MXArray from torch tensors in the layout of :func:`to_torch`.

    The bytes are copied unchanged, so ``from_torch(*to_torch(a), a.format,
    shape=a.shape, axis=a.block_axis, tensor_scale=a.tensor_scale)`` reproduces
    ``a.packed`` and ``a.scales``.

    Parameters
    ----------
    data, scales : torch.Tensor
        The data tensor (its torch dtype as in the module docstring, or ``torch.uint8``
        holding the same bytes) and the scales (the float8 type of :func:`to_torch` or
        ``uint8``), both with the block axis innermost.
    fmt : str or Format
    shape : tuple of int, optional
        The logical shape.  By default the block axis has the full padded length.
    axis : int, optional
        Where the block axis goes in the logical shape (default the last).
    rounding, scale_mode : str, optional
        Recorded metadata.
    tensor_scale : float, optional
        The per-tensor scale, required for formats that have one (nvfp4).

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
        If the shapes do not fit the format, a code is out of range, the padding
        holds non-zero codes, or ``tensor_scale`` is missing or not expected.

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
    allowed = (want, torch.uint8) if want.itemsize == 1 else (want,)
    if data.dtype not in allowed:
        raise TypeError(f"data must have dtype {' or '.join(map(str, allowed))} for "
                        f"{fmt.name}, got {data.dtype}")
    if scales.dtype != torch.uint8 and scales.dtype != _torch_scale_dtype(fmt, torch):
        raise TypeError(f"scales must have dtype {_torch_scale_dtype(fmt, torch)} or "
                        f"torch.uint8 for {fmt.name}, got {scales.dtype}")
    if data.ndim == 0 or scales.ndim != data.ndim:
        raise ValueError(f"data and scales must have the same number (>= 1) of dimensions, "
                         f"got shapes {tuple(data.shape)} and {tuple(scales.shape)}")
    raw = _host_array(data, torch)
    ax = blocks.normalize_axis(axis, raw.ndim)
    scale_bytes = np.moveaxis(_host_array(scales, torch), -1, ax)
    packed = _torch_holds_packed(fmt)
    padded = raw.shape[-1] * (fmt.layout.elements if packed else 1)
    if shape is None:
        lead = raw.shape[:-1]
        shape = lead[:ax] + (padded,) + lead[ax:]
    meta = {"rounding": rounding, "scale_mode": scale_mode, "tensor_scale": tensor_scale}
    if packed:
        return MXArray.from_parts(raw, scale_bytes, fmt, tuple(shape), axis=ax,
                                  layout="packed", **meta)
    # one code per element: drop the (zero) padding and hand over the logical codes
    shape = blocks.normalize_shape(shape)
    length = shape[ax] if len(shape) == raw.ndim else -1
    if not 0 < length <= padded or blocks.n_blocks(length, fmt.block_size) * fmt.block_size \
            != padded:
        raise ValueError(f"data holds {padded} codes along its innermost axis, which is not "
                         f"the padded length of axis {ax} of shape {tuple(shape)} for "
                         f"{fmt.name} (blocks of {fmt.block_size})")
    micro = ((1 << fmt.code_bits) - 1) ^ (fmt.n_codes - 1)  # a sub-block's microexponent
    if np.any(raw[..., length:] & ~raw.dtype.type(micro)):
        raise ValueError("the padding after the last element of a block axis must be zero")
    codes = np.moveaxis(raw[..., :length], -1, ax)
    return MXArray.from_parts(codes, scale_bytes, fmt, shape, axis=ax, layout="codes", **meta)


def _host_array(t: Any, torch: ModuleType) -> np.ndarray:
    """A torch tensor's integers as a C-contiguous NumPy array of the same shape: uint8
    for one-byte dtypes (float8, float4_x2 ... reinterpreted), else its own dtype."""
    t = t.detach().contiguous()
    if t.element_size() == 1 and t.dtype != torch.uint8:
        t = t.view(torch.uint8)
    return t.cpu().numpy()
