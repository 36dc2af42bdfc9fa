"""Files for MX arrays: self-describing safetensors / .npz, checkpoint layouts, inspection.

- :func:`save` and :func:`load`: MX arrays (and dense arrays) in ``.safetensors`` or
  ``.npz`` files whose metadata records everything needed to read them back exactly.
- :mod:`mxarray.io.checkpoints`: the gpt-oss / Hugging Face MXFP4 layout and GGUF's
  ``block_mxfp4``.
- :func:`describe_file` and :func:`quantize_file` (module :mod:`mxarray.io.quantizing`,
  tensors chosen as :mod:`mxarray.io.selection` says): the engines of ``mxarray inspect``
  and ``mxarray quantize``.

Reading ``.safetensors`` files needs the ``io`` extra (``pip install 'mxarray[io]'``);
it is imported only when such a file is read.
"""

from __future__ import annotations

from ._files import load, save
from .describe import describe_file
from .quantizing import quantize_file

__all__ = ["save", "load", "describe_file", "quantize_file"]
