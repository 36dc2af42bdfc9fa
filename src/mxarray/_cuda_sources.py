"""Locate the CUDA C++ sources and derive their compile-time definitions from the spec.

The sources ship inside the wheel as ``mxarray/_data/cuda/``; in a source checkout (an
editable install) they are read from the repository's top-level ``backends/cuda/``.

Nothing numeric about a format is written in the CUDA sources: every kernel is compiled
with ``-D`` definitions made here from :mod:`mxarray.formats` (and so from ``spec/mx.toml``)
and from the generator constants of :mod:`mxarray._random`.  The same definitions build
the host-compiled test library, so the GPU and host builds read one source of truth.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import numpy as np

from . import _random
from ._kernel_codes import ELEMENT_KIND_CODES, ROUNDING_CODES, SCALE_KIND_CODES, SCALE_MODE_CODES
from .formats import BLOCK_SIZE, FORMATS, SCALE, UE4M3, Format

__all__ = [
    "KERNEL_SOURCES",
    "cuda_dir",
    "read_source",
    "spec_definitions",
    "format_fields",
    "format_initializer",
    "block_fields",
    "block_initializer",
    "compile_definitions",
]

_PACKAGE_DIR = Path(__file__).resolve().parent
_CANDIDATES = (
    _PACKAGE_DIR / "_data" / "cuda",  # installed wheel
    _PACKAGE_DIR.parent.parent / "backends" / "cuda",  # source checkout
)

KERNEL_SOURCES: dict[str, tuple[str, ...]] = {
    "mx_quantize.cu": ("MX_FORMAT",),
    "mx_dequantize.cu": ("MX_FORMAT",),
    "mx_pack.cu": ("MX_FORMAT",),
    "mx_matmul_simple.cu": ("MX_FORMAT_A", "MX_FORMAT_B"),
    "mx_matmul_mma.cu": ("MX_FORMAT_A", "MX_FORMAT_B"),
    "mx_block_quantize.cu": ("MX_FORMAT",),
    "mx_block_dequantize.cu": ("MX_FORMAT",),
    "mx_block_pack.cu": ("MX_FORMAT",),
    "mx_matmul_block.cu": ("MX_FORMAT_A", "MX_FORMAT_B"),
    "mx_fold_bf16.cu": ("MX_FORMAT",),
    "mx_packed.cu": ("MX_FORMAT",),
    "mx_block_packed.cu": ("MX_FORMAT",),
}
"""Every kernel source and the format macros it must be compiled with (each macro ``M``
also gets ``M_BLOCK``, the format's block layout, from :func:`compile_definitions`)."""

BLOCK_SOURCES = frozenset({"mx_block_quantize.cu", "mx_block_dequantize.cu", "mx_block_pack.cu",
                           "mx_matmul_block.cu", "mx_block_packed.cu"})
"""The sources of the general block formats (the others serve the six OCP formats)."""

_INCLUDE = re.compile(r'^#include "([^"]+)"[ \t]*$', re.MULTILINE)


def cuda_dir() -> Path:
    """Return the directory that holds the CUDA sources (``mx_arith.cuh`` and the kernels).

    Raises
    ------
    FileNotFoundError
        If neither the packaged copy nor a source checkout's ``backends/cuda`` exists.
    """
    for candidate in _CANDIDATES:
        if (candidate / "mx_arith.cuh").is_file():
            return candidate
    raise FileNotFoundError(
        "mxarray cannot find its CUDA sources; looked in " + ", ".join(str(c) for c in _CANDIDATES)
    )


@functools.cache
def read_source(name: str) -> str:
    """Return the text of source ``name`` with its local ``#include "..."`` lines inlined.

    Inlining makes the text self-contained, so a compiler cache keyed on the source text
    (CuPy's) sees every change to a shared header.  Each header is inlined once.
    """
    seen: set[str] = set()

    def expand(file_name: str) -> str:
        path = cuda_dir() / file_name
        if not path.is_file():
            raise FileNotFoundError(f"no CUDA source {file_name!r} in {cuda_dir()}")

        def include(match: re.Match[str]) -> str:
            header = match.group(1)
            if header in seen:
                return f"// {header} already included"
            seen.add(header)
            return expand(header)

        return _INCLUDE.sub(include, path.read_text(encoding="utf-8"))

    return expand(name)


def spec_definitions() -> dict[str, str]:
    """Spec-wide constants the sources need: block size, E8M0, generator, mode numbers,
    and ``MX_UE4M3``, the E4M3 element format whose codes 0..0x7E are the UE4M3 grid."""
    defs = {
        "MX_BLOCK_SIZE": str(BLOCK_SIZE),
        "MX_SCALE_BIAS": str(SCALE.bias),
        "MX_SCALE_NAN_CODE": str(SCALE.nan_code),
        "MX_SCALE_MIN_EXP": str(SCALE.min_exponent),
        "MX_SCALE_MAX_EXP": str(SCALE.max_exponent),
        "MX_RNG_GAMMA": f"{int(_random.GAMMA):#x}ull",
        "MX_RNG_MIX1": f"{int(_random._MIX1):#x}ull",
        "MX_RNG_MIX2": f"{int(_random._MIX2):#x}ull",
    }
    # the numbers of modes and kinds, shared with the Numba kernels (mxarray._kernel_codes)
    for prefix, codes in (("MX_KIND_", ELEMENT_KIND_CODES), ("MX_SCALE_KIND_", SCALE_KIND_CODES),
                          ("MX_SCALE_MODE_", SCALE_MODE_CODES), ("MX_ROUNDING_", ROUNDING_CODES)):
        defs.update((prefix + name.upper(), str(i)) for name, i in codes.items())
    defs["MX_UE4M3"] = format_initializer(_ue4m3_element())
    return defs


def format_fields(fmt: Format) -> dict[str, int]:
    """The fields of the C struct ``MxFormat`` for ``fmt``, in declaration order.

    Raises
    ------
    ValueError
        If the format breaks an assumption of the CUDA arithmetic: NaN codes other than
        the magnitudes above ``max_code``, a value that float32 cannot hold exactly
        at the smallest scale, or an element value that is not a float16 (the input
        type of the tensor-core matmul).
    """
    sign = fmt.sign_bit
    above = set(range(fmt.max_code + 1, sign))
    inf = {c & (sign - 1) for c in fmt.inf_codes}
    nan = set(fmt.nan_codes)
    expected_nan = {c | s for c in above - inf for s in (0, sign)}
    if fmt.kind == "float" and (len(inf) > 1 or nan != expected_nan):
        raise ValueError(f"{fmt.name}: NaN codes are not the magnitudes above max_code")
    lowest = math.frexp(fmt.min_subnormal)[1] - 1 - ((1 << fmt.sub_block_bits) - 1)
    if lowest + SCALE.min_exponent < -149:
        raise ValueError(f"{fmt.name}: the smallest value times 2^-127 is not a float32")
    finite = fmt.decode_table[np.isfinite(fmt.decode_table)]
    if not np.array_equal(finite.astype(np.float16).astype(np.float64), finite):
        raise ValueError(f"{fmt.name}: an element value is not a float16 (the mma kernel's input)")
    mant, exp = math.frexp(fmt.max_normal)
    return {
        "kind": ELEMENT_KIND_CODES[fmt.kind],
        "bits": fmt.bits,
        "mantissa_bits": fmt.mantissa_bits,
        "bias": fmt.bias,
        "emax": fmt.emax,
        "emin": fmt.emin,
        "max_code": fmt.max_code,
        "inf_code": next(iter(inf), -1),
        "max_normal_exp": exp - 1,
        "pack_elements": fmt.layout.elements,
        "pack_bytes": fmt.layout.bytes,
        "reserved": 0,
        "max_normal_sig": int(math.ldexp(mant, 53)),
    }


def format_initializer(fmt: Format) -> str:
    """A C brace initializer of ``MxFormat`` for ``fmt``, e.g. ``{0,4,1,...}``."""
    values = format_fields(fmt)
    parts = [str(v) for k, v in values.items() if k != "max_normal_sig"]
    return "{" + ",".join(parts + [f"{values['max_normal_sig']:#x}ull"]) + "}"


def _ue4m3_element() -> Format:
    """The E4M3 element format whose codes ``0 .. nan_code - 1`` are the UE4M3 grid."""
    e4m3 = FORMATS["mxfp8_e4m3"]
    if not np.array_equal(e4m3.decode_table[: UE4M3.nan_code], UE4M3.finite_grid):
        raise ValueError("the UE4M3 grid is not the non-negative E4M3 codes")
    return e4m3


def block_fields(fmt: Format) -> dict[str, int]:
    """The fields of the C struct ``MxBlockFormat`` for ``fmt``, in declaration order.

    Raises
    ------
    ValueError
        If the CUDA block kernels cannot run ``fmt``: a block size that is not a power
        of two dividing 32 (one group of lanes per block), a scale other than E8M0 or
        UE4M3, UE4M3 with non-float elements or with sub-blocks, or the "promote"
        overflow rule.
    """
    if fmt.block_size > 32 or 32 % fmt.block_size:
        raise ValueError(f"{fmt.name}: block size {fmt.block_size} does not divide a warp")
    if fmt.scale is SCALE:
        scale_kind = "e8m0"
    elif fmt.scale is UE4M3 and fmt.kind == "float" and not fmt.sub_block_size:
        scale_kind = "ue4m3"
        # mx_round_onto_grid: a midpoint in grid units (< 2 max / min) times a UE4M3 or
        # element significand (< 2^(m+1)) times S_t's 24-bit significand stays below 2^63
        span = 2 * fmt.max_normal / fmt.min_subnormal
        if span * 2.0 ** (max(fmt.mantissa_bits, 3) + 1 + 24) >= 2.0**63:
            raise ValueError(f"{fmt.name}: its grid is too wide for the exact UE4M3 products")
    else:
        raise ValueError(f"{fmt.name}: the CUDA kernels have no {fmt.scale.name} scale path")
    if fmt.magnitude_overflow != "saturate":
        raise ValueError(f"{fmt.name}: the CUDA kernels implement only saturating sub-blocks")
    return {
        "block_size": fmt.block_size,
        "scale_kind": SCALE_KIND_CODES[scale_kind],
        "scale_nan_code": fmt.scale.nan_code,
        "sub_block_size": fmt.sub_block_size,
        "sub_block_bits": fmt.sub_block_bits,
        "code_bytes": fmt.code_dtype.itemsize,
        "element_bytes": fmt.element_bytes,
        "sub_block_bytes": fmt.sub_block_bytes,
    }


def block_initializer(fmt: Format) -> str:
    """A C brace initializer of ``MxBlockFormat`` for ``fmt``, e.g. ``{16,0,255,2,...}``."""
    return "{" + ",".join(str(v) for v in block_fields(fmt).values()) + "}"


def compile_definitions(formats: dict[str, Format]) -> list[str]:
    """``-D`` options for a source: the spec constants plus ``{macro: format}`` structs
    (``macro`` the element's ``MxFormat``, ``macro_BLOCK`` its ``MxBlockFormat``)."""
    defs = dict(spec_definitions())
    for macro, fmt in formats.items():
        defs[macro] = format_initializer(fmt)
        defs[f"{macro}_BLOCK"] = block_initializer(fmt)
    return [f"-D{name}={value}" for name, value in defs.items()]
