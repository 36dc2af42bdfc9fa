"""Warning categories of the namespace, and how they are raised.

:class:`BlockAxisWarning` tells a user that an operation on MX operands could not use the
MX dot product because of where the operands are blocked, so it computed in float32 on
the dequantized values instead.  Filter it, or turn it into an error, with the
:mod:`warnings` module::

    warnings.simplefilter("error", mxarray.BlockAxisWarning)
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["BlockAxisWarning", "warn_outside"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BlockAxisWarning(UserWarning):
    """An MX product ran in float32 because the operands' block axes are not along the
    contracted axis (for ``x @ W``: ``x`` blocked along its last axis, ``W`` along its
    second-to-last, e.g. ``mx.asarray(W, dtype=fmt, block_axis=0)``)."""


def warn_outside(message: str, category: type[Warning]) -> None:
    """Warn with ``message``, attributed to the first caller outside the mxarray package
    (so an ``x @ W`` in user code is the line the warning names)."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
