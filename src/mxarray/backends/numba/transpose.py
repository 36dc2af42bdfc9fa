"""Tiled copies between strided views and C-contiguous arrays (the block axis moved last).

Moving the block axis last is a transpose when the block axis is not the input's last
axis: NumPy's copy of such a view walks one side with a large stride and is about twenty
times slower than a plain copy.  These kernels copy 32 x 32 tiles, so both the strided
reads and the contiguous writes stay within a few cache lines per tile row.
"""

from __future__ import annotations

import numba as nb

__all__ = ["copy_tiles"]

_TILE = 32


@nb.njit(parallel=True, cache=True, nogil=True)
def copy_tiles(src, dst):  # pragma: no cover - compiled
    """``dst[...] = src`` for 2-D arrays of one shape, tile by tile, in parallel."""
    rows, cols = src.shape
    tiles_c = (cols + _TILE - 1) // _TILE
    n_tiles = ((rows + _TILE - 1) // _TILE) * tiles_c
    for t in nb.prange(n_tiles):
        i0 = (t // tiles_c) * _TILE
        j0 = (t % tiles_c) * _TILE
        for j in range(j0, min(j0 + _TILE, cols)):
            for i in range(i0, min(i0 + _TILE, rows)):
                dst[i, j] = src[i, j]
