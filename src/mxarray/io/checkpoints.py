"""MXFP4 checkpoint layouts: gpt-oss / Hugging Face ``*_blocks`` + ``*_scales`` (the original
gpt-oss checkpoints name them ``*.blocks`` + ``*.scales``), and GGUF.

All three layouts hold the same E2M1 codes and E8M0 scale bytes, blocked along the
innermost axis; they differ only in where each 4-bit code sits.  For one block of 32
elements ``e[0..31]`` with scale byte ``s``:

==============================  ==========================================================
mxarray ``fp4_nibble``          byte ``i`` = ``e[2i]`` (low nibble) | ``e[2i+1]`` (high),
(``MXArray.packed``)            16 bytes per block, scales in a separate array
gpt-oss / Hugging Face          the same 16 bytes, shaped ``(..., n_blocks, 16)`` in
(``NAME_blocks``, ``_scales``)  ``NAME_blocks``; ``NAME_scales`` is ``(..., n_blocks)``
GGUF ``block_mxfp4`` (ggml)     17 bytes per block: ``s``, then ``qs[j]`` =
                                ``e[j]`` (low nibble) | ``e[j + 16]`` (high), j < 16
==============================  ==========================================================

So mxarray and gpt-oss share their bytes exactly (a reshape), and GGUF is a nibble
permutation plus the scale byte in front of each block; every conversion here is
lossless.  Two differences in meaning remain, which the conversions do not change:
ggml and gpt-oss read scale byte 0xFF as ``2**128`` where MX (and mxarray) read it as
NaN (:func:`to_gpt_oss`, :func:`to_gguf_mxfp4` and :func:`from_gpt_oss` warn with a
:class:`LayoutWarning` when a block has it), and GGUF rows hold whole blocks, so the
blocked axis must be a multiple of 32.

These layouts and readings were checked against the code of ggml 0.21.0 (``block_mxfp4``
in ``ggml-common.h``, ``dequantize_row_mxfp4`` and ``ggml_e8m0_to_fp32``, which forms the
float32 bits ``s << 23``) and gpt-oss 0.0.9 (``gpt_oss/torch/weights.py``, which applies
``ldexp`` with ``s - 127``).

The innermost axis of the stored tensors is the blocked one.  gpt-oss blocks its MoE
weights along the contraction axis and transposes after decoding; pass that axis as
``axis`` to :func:`from_gpt_oss` to get the logical (transposed) tensor with the same
bytes.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Mapping

import numpy as np

from .. import layout
from ..array import MXArray
from ..formats import get_format
from ._container import TensorInfo
from ._files import named_items, open_reader, open_writer

__all__ = [
    "to_gpt_oss",
    "from_gpt_oss",
    "to_gguf_mxfp4",
    "from_gguf_mxfp4",
    "gpt_oss_to_gguf",
    "gguf_to_gpt_oss",
    "gpt_oss_pairs",
    "load_gpt_oss",
    "save_gpt_oss",
    "torchao_pairs",
    "load_torchao",
    "LayoutWarning",
]


class LayoutWarning(UserWarning):
    """A conversion between layouts changed what some bytes mean (the bytes are kept)."""


def _warn_nan_blocks(scales: np.ndarray, direction: str) -> None:
    """Warn when scale bytes 0xFF, NaN in MX and ``2**128`` in ggml / gpt-oss, cross over."""
    count = int(np.count_nonzero(scales == FORMAT.scale.nan_code))
    if count:
        warnings.warn(f"{count} block(s) have scale byte 0xFF: NaN in MX (mxarray), 2**128 in "
                      f"ggml and gpt-oss; {direction}", LayoutWarning, stacklevel=3)

FORMAT = get_format("mxfp4_e2m1")
BLOCK_BYTES = FORMAT.block_size // 2
"""Bytes of E2M1 codes per block (16)."""
GGUF_BLOCK_BYTES = BLOCK_BYTES + 1
"""Bytes of one GGUF ``block_mxfp4``: the scale byte and 16 bytes of codes (17)."""
BLOCKS_SUFFIX, SCALES_SUFFIX = "_blocks", "_scales"
PAIR_SUFFIXES = ((BLOCKS_SUFFIX, SCALES_SUFFIX), (".blocks", ".scales"))
"""Name endings of a pair: Hugging Face's ``NAME_blocks``/``NAME_scales`` (what
:func:`save_gpt_oss` writes) and the original gpt-oss checkpoints' ``NAME.blocks``/
``NAME.scales``."""


def _uint8(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 array, got dtype {arr.dtype}")
    return arr


def _check_pair(blocks: np.ndarray, scales: np.ndarray) -> None:
    if blocks.ndim < 2 or blocks.shape[-1] != BLOCK_BYTES or blocks.shape[-2] == 0:
        raise ValueError(f"blocks must have shape (..., n_blocks, {BLOCK_BYTES}) with "
                         f"n_blocks > 0, got {blocks.shape}")
    if scales.shape != blocks.shape[:-1]:
        raise ValueError(f"scales must have shape {blocks.shape[:-1]} (blocks without its "
                         f"last axis), got {scales.shape}")


def to_gpt_oss(a: MXArray) -> tuple[np.ndarray, np.ndarray]:
    """Return the gpt-oss / Hugging Face ``(blocks, scales)`` of an MXFP4 array.

    ``blocks`` is uint8 ``(*lead, n_blocks, 16)`` and ``scales`` uint8
    ``(*lead, n_blocks)``, where ``lead`` is the logical shape without the block axis.

    Raises
    ------
    ValueError
        If ``a`` is not ``mxfp4_e2m1`` or its block axis is not a multiple of 32 long
        (the layout has no room for a logical length).

    Examples
    --------
    >>> import numpy as np, mxarray
    >>> from mxarray.io.checkpoints import to_gpt_oss
    >>> a = mxarray.quantize(np.ones((3, 64), np.float32), "mxfp4_e2m1")
    >>> blocks, scales = to_gpt_oss(a)
    >>> blocks.shape, scales.shape, hex(blocks[0, 0, 0]), int(scales[0, 0])
    ((3, 2, 16), (3, 2), '0x66', 125)
    """
    if not isinstance(a, MXArray) or a.format is not FORMAT:
        raise ValueError(f"the gpt-oss layout holds {FORMAT.name} arrays only")
    length = a.shape[a.block_axis]
    if length % FORMAT.block_size:
        raise ValueError(f"the block axis has {length} elements; checkpoint layouts need a "
                         f"multiple of {FORMAT.block_size}")
    a = a.to_device("cpu")
    lead = layout.lead_shape(a.shape, a.block_axis)
    n = length // FORMAT.block_size
    blocks = np.array(a.packed).reshape(lead + (n, BLOCK_BYTES))
    scales = np.ascontiguousarray(np.moveaxis(a.scales, a.block_axis, -1))
    _warn_nan_blocks(scales, "these NaN blocks will read as huge finite values there")
    return blocks, scales


def from_gpt_oss(blocks: Any, scales: Any, *, axis: int = -1) -> MXArray:
    """Wrap gpt-oss / Hugging Face ``(blocks, scales)`` as an MXFP4 array, sharing no state.

    Parameters
    ----------
    blocks : array_like of uint8, shape (..., n_blocks, 16)
    scales : array_like of uint8, shape (..., n_blocks)
    axis : int, optional
        Where the blocked axis (``32 * n_blocks`` elements) goes in the logical shape
        ``(*lead, 32 * n_blocks)`` before it moves; default last.

    Raises
    ------
    TypeError
        If an input is not uint8.
    ValueError
        If the shapes do not fit together.

    Examples
    --------
    >>> import numpy as np
    >>> from mxarray.io.checkpoints import from_gpt_oss
    >>> blocks = np.full((4, 1, 16), 0x42, np.uint8)     # codes 2 (1.0) and 4 (2.0)
    >>> scales = np.full((4, 1), 127, np.uint8)
    >>> a = from_gpt_oss(blocks, scales, axis=0)
    >>> a.shape, a.block_axis, a.dequantize()[:2, 0].tolist()
    ((32, 4), 0, [1.0, 2.0])
    """
    blocks, scales = _uint8(blocks, "blocks"), _uint8(scales, "scales")
    _check_pair(blocks, scales)
    _warn_nan_blocks(scales, "these blocks of 2**128-scaled values read as NaN here")
    lead, n = blocks.shape[:-2], blocks.shape[-2]
    ax = layout.normalize_axis(axis, len(lead) + 1)
    shape = lead[:ax] + (n * FORMAT.block_size,) + lead[ax:]
    return MXArray.from_parts(blocks.reshape(lead + (n * BLOCK_BYTES,)),
                              np.moveaxis(scales, -1, ax), FORMAT, shape, axis=ax,
                              layout="packed")


def gpt_oss_to_gguf(blocks: Any, scales: Any) -> np.ndarray:
    """Rearrange gpt-oss ``(blocks, scales)`` into GGUF ``block_mxfp4`` rows.

    Returns uint8 ``(*lead, 17 * n_blocks)``: per block the scale byte, then byte ``j``
    holding element ``j`` in its low nibble and element ``j + 16`` in its high nibble.

    Examples
    --------
    >>> import numpy as np
    >>> from mxarray.io.checkpoints import gpt_oss_to_gguf
    >>> blocks = np.zeros((1, 16), np.uint8)
    >>> blocks[0, 0], blocks[0, 8] = 0x21, 0x43       # e[0]=1, e[1]=2, e[16]=3, e[17]=4
    >>> gguf = gpt_oss_to_gguf(blocks, np.array([127], np.uint8))
    >>> [hex(b) for b in gguf[:4]], gguf.shape
    (['0x7f', '0x31', '0x42', '0x0'], (17,))
    """
    blocks, scales = _uint8(blocks, "blocks"), _uint8(scales, "scales")
    _check_pair(blocks, scales)
    codes = np.empty(blocks.shape[:-1] + (2 * BLOCK_BYTES,), dtype=np.uint8)
    codes[..., 0::2] = blocks & 0x0F
    codes[..., 1::2] = blocks >> 4
    out = np.empty(blocks.shape[:-1] + (GGUF_BLOCK_BYTES,), dtype=np.uint8)
    out[..., 0] = scales
    out[..., 1:] = codes[..., :BLOCK_BYTES] | (codes[..., BLOCK_BYTES:] << 4)
    return out.reshape(blocks.shape[:-2] + (blocks.shape[-2] * GGUF_BLOCK_BYTES,))


def gguf_to_gpt_oss(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`gpt_oss_to_gguf`: GGUF ``block_mxfp4`` rows to ``(blocks, scales)``.

    Raises
    ------
    ValueError
        If the last axis is not a positive multiple of 17 bytes.

    Examples
    --------
    >>> import numpy as np
    >>> from mxarray.io.checkpoints import gguf_to_gpt_oss
    >>> row = np.zeros(17, np.uint8)
    >>> row[0], row[1] = 127, 0x31                    # e[0] = 1, e[16] = 3
    >>> blocks, scales = gguf_to_gpt_oss(row)
    >>> hex(blocks[0, 0]), hex(blocks[0, 8]), scales.tolist()
    ('0x1', '0x3', [127])
    """
    data = _uint8(data, "data")
    if data.ndim < 1 or data.shape[-1] == 0 or data.shape[-1] % GGUF_BLOCK_BYTES:
        raise ValueError(f"GGUF MXFP4 rows must be a positive multiple of {GGUF_BLOCK_BYTES} "
                         f"bytes long, got shape {data.shape}")
    rows = data.reshape(data.shape[:-1] + (data.shape[-1] // GGUF_BLOCK_BYTES, GGUF_BLOCK_BYTES))
    qs = rows[..., 1:]
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
    blocks = codes[..., 0::2] | (codes[..., 1::2] << 4)
    return blocks, np.ascontiguousarray(rows[..., 0])


def to_gguf_mxfp4(a: MXArray) -> np.ndarray:
    """Return an MXFP4 array as GGUF ``block_mxfp4`` rows, uint8 ``(*lead, 17 * n_blocks)``.

    Examples
    --------
    >>> import numpy as np, mxarray
    >>> from mxarray.io.checkpoints import to_gguf_mxfp4
    >>> rows = to_gguf_mxfp4(mxarray.quantize(np.ones((2, 64), np.float32), "mxfp4_e2m1"))
    >>> rows.shape, int(rows[0, 0]), hex(rows[0, 1])
    ((2, 34), 125, '0x66')
    """
    return gpt_oss_to_gguf(*to_gpt_oss(a))


def from_gguf_mxfp4(data: Any, *, axis: int = -1) -> MXArray:
    """Wrap GGUF ``block_mxfp4`` rows as an MXFP4 array (``axis`` as in :func:`from_gpt_oss`).

    Examples
    --------
    >>> import numpy as np, mxarray
    >>> from mxarray.io.checkpoints import from_gguf_mxfp4, to_gguf_mxfp4
    >>> a = mxarray.quantize(np.linspace(-6, 6, 64, dtype=np.float32), "mxfp4_e2m1")
    >>> b = from_gguf_mxfp4(to_gguf_mxfp4(a))
    >>> bool(np.array_equal(a.packed, b.packed) and np.array_equal(a.scales, b.scales))
    True
    """
    return from_gpt_oss(*gguf_to_gpt_oss(data), axis=axis)


def gpt_oss_pairs(entries: Mapping[str, TensorInfo]) -> dict[str, tuple[str, str]]:
    """Find ``NAME_blocks`` / ``NAME_scales`` (or ``NAME.blocks`` / ``NAME.scales``) tensor
    pairs that fit the gpt-oss layout.

    Returns ``{NAME: (blocks tensor, scales tensor)}`` for uint8 pairs whose shapes
    agree; other tensors are not part of any pair.

    Examples
    --------
    >>> from mxarray.io._container import TensorInfo
    >>> from mxarray.io.checkpoints import gpt_oss_pairs
    >>> gpt_oss_pairs({"w_blocks": TensorInfo("uint8", (4, 2, 16), 128),
    ...                "w_scales": TensorInfo("uint8", (4, 2), 8),
    ...                "b_blocks": TensorInfo("float32", (4, 16), 256)})
    {'w': ('w_blocks', 'w_scales')}
    """
    pairs = {}
    for name, info in entries.items():
        for blocks_suffix, scales_suffix in PAIR_SUFFIXES:
            if not name.endswith(blocks_suffix):
                continue
            base = name[: -len(blocks_suffix)]
            scales = entries.get(base + scales_suffix)
            if (base not in pairs and scales is not None
                    and info.dtype == scales.dtype == "uint8"
                    and len(info.shape) >= 2 and info.shape[-1] == BLOCK_BYTES
                    and info.shape[-2] > 0 and scales.shape == info.shape[:-1]):
                pairs[base] = (name, base + scales_suffix)
    return pairs


def load_gpt_oss(path: str | os.PathLike[str], *, axis: int = -1) -> dict[str, Any]:
    """Load a checkpoint in the gpt-oss / Hugging Face MXFP4 layout.

    Each ``NAME_blocks`` / ``NAME_scales`` pair (or ``NAME.blocks`` / ``NAME.scales``, as
    in the original gpt-oss checkpoints) becomes an MXFP4 :class:`MXArray` ``NAME``
    (blocked axis placed at ``axis``); other tensors come back as NumPy arrays.

    Raises
    ------
    ValueError
        If the file is malformed, or a tensor ``NAME`` sits next to a pair ``NAME``.
    """
    with open_reader(path) as reader:
        pairs = gpt_oss_pairs(reader.entries)
        by_tensor = {blocks: base for base, (blocks, _) in pairs.items()}
        in_pairs = {t for pair in pairs.values() for t in pair}
        clashes = sorted(set(pairs) & set(reader.entries))
        if clashes:
            raise ValueError(f"{os.fspath(path)}: tensor(s) {clashes} share their names with "
                             "a blocks/scales pair; load the file with mxarray.io.load")
        out: dict[str, Any] = {}
        for name in reader.entries:
            if name in by_tensor:
                base = by_tensor[name]
                out[base] = from_gpt_oss(reader.read(name), reader.read(pairs[base][1]),
                                         axis=axis)
            elif name not in in_pairs:
                out[name] = reader.read(name)
        return out


def save_gpt_oss(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> None:
    """Save MXFP4 arrays as ``NAME_blocks`` / ``NAME_scales`` pairs (other values dense).

    The file carries no mxarray metadata: it is laid out as gpt-oss checkpoints are.

    Raises
    ------
    TypeError
        If ``arrays`` is not a mapping.
    ValueError
        If an MX array is not MXFP4 with a block axis a multiple of 32 long, or a name is
        not a non-empty string or collides with another.

    Examples
    --------
    >>> import numpy as np, mxarray, os, tempfile
    >>> from mxarray.io.checkpoints import load_gpt_oss, save_gpt_oss
    >>> w = mxarray.quantize(np.ones((4, 64), np.float32), "mxfp4_e2m1")
    >>> path = os.path.join(tempfile.mkdtemp(), "experts.npz")
    >>> save_gpt_oss(path, {"mlp1_weight": w})
    >>> sorted(np.load(path))
    ['mlp1_weight_blocks', 'mlp1_weight_scales']
    >>> bool(np.array_equal(load_gpt_oss(path)["mlp1_weight"].packed, w.packed))
    True
    """
    tensors: list[tuple[str, np.ndarray]] = []
    for name, value in named_items(arrays):
        if isinstance(value, MXArray):
            blocks, scales = to_gpt_oss(value)
            tensors += [(name + BLOCKS_SUFFIX, blocks), (name + SCALES_SUFFIX, scales)]
        else:
            tensors.append((name, np.asarray(value)))
    with open_writer(path, [(n, t.dtype, t.shape) for n, t in tensors], {}) as writer:
        for n, t in tensors:
            writer.write(n, t)


# torchao-style MX tensors as safetensors.torch.save_file writes them: the element data
# (F4 / F8 dtypes) and a float8_e8m0fnu scale per 32 elements of the last axis.
TORCHAO_ELEMENTS = {"float4_e2m1fn": "mxfp4_e2m1", "float8_e4m3fn": "mxfp8_e4m3",
                    "float8_e5m2": "mxfp8_e5m2"}
"""Element dtypes of a torchao-style pair and the MX format each one is."""
TORCHAO_NAMES = (("", "_scale"), ("", ".scale"), (".qdata", ".scale"), ("_qdata", "_scale"))
"""Name endings of a pair's data and scale tensors: ``NAME`` + ``NAME_scale`` (or
``NAME.scale``), or torchao's attribute names ``NAME.qdata`` + ``NAME.scale``."""


def torchao_pairs(entries: Mapping[str, TensorInfo]) -> dict[str, tuple[str, str, str]]:
    """Find torchao-style MX pairs: element data and ``float8_e8m0fnu`` scales, one per
    32 elements of the data's last axis.

    Returns ``{NAME: (data tensor, scale tensor, format name)}``.

    Examples
    --------
    >>> from mxarray.io._container import TensorInfo
    >>> from mxarray.io.checkpoints import torchao_pairs
    >>> torchao_pairs({"w": TensorInfo("float4_e2m1fn", (4, 64), 128),
    ...                "w_scale": TensorInfo("float8_e8m0fnu", (4, 2), 8)})
    {'w': ('w', 'w_scale', 'mxfp4_e2m1')}
    """
    pairs = {}
    for name, info in entries.items():
        for data_end, scale_end in TORCHAO_NAMES:
            if not name.endswith(scale_end) or info.dtype != "float8_e8m0fnu":
                continue
            base = name[: -len(scale_end)]
            data = entries.get(base + data_end)
            if (base and base not in pairs and data is not None
                    and data.dtype in TORCHAO_ELEMENTS and data.shape
                    and data.shape[-1] % FORMAT.block_size == 0
                    and info.shape == data.shape[:-1] + (data.shape[-1] // FORMAT.block_size,)):
                pairs[base] = (base + data_end, name, TORCHAO_ELEMENTS[data.dtype])
    return pairs


def load_torchao(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a file holding torchao-style MX pairs (:func:`torchao_pairs`): each pair
    becomes an :class:`MXArray` ``NAME`` blocked along its last axis; other tensors come
    back as NumPy arrays.

    Raises
    ------
    ValueError
        If the file is malformed, a pair's codes are invalid, or a tensor ``NAME`` sits
        next to a pair ``NAME`` with other data.

    Examples
    --------
    >>> import numpy as np, ml_dtypes, os, tempfile, mxarray
    >>> from mxarray.io import save
    >>> from mxarray.io.checkpoints import load_torchao
    >>> a = mxarray.quantize(np.linspace(-6, 6, 64, dtype=np.float32), "mxfp8_e4m3")
    >>> path = os.path.join(tempfile.mkdtemp(), "ao.safetensors")
    >>> save(path, {"w": a.codes().view(ml_dtypes.float8_e4m3fn),
    ...             "w_scale": a.scales.view(ml_dtypes.float8_e8m0fnu)})
    >>> back = load_torchao(path)["w"]
    >>> back.format.name, bool(np.array_equal(back.packed, a.packed))
    ('mxfp8_e4m3', True)
    """
    from ..interop import from_ml_dtypes

    with open_reader(path) as reader:
        pairs = torchao_pairs(reader.entries)
        by_data = {data: base for base, (data, _, _) in pairs.items()}
        in_pairs = {t for data, scale, _ in pairs.values() for t in (data, scale)}
        clashes = sorted(n for n in set(pairs) & set(reader.entries) if n not in by_data)
        if clashes:
            raise ValueError(f"{os.fspath(path)}: tensor(s) {clashes} share their names with "
                             "an MX pair; load the file with mxarray.io.load")
        out: dict[str, Any] = {}
        for name in reader.entries:
            if name in by_data:
                base = by_data[name]
                _, scale, fmt = pairs[base]
                out[base] = from_ml_dtypes(reader.read(name), reader.read(scale), fmt)
            elif name not in in_pairs:
                out[name] = reader.read(name)
        return out
