"""Coverage-guided fuzzing of ``mxarray.io.load`` (and the readers beside it) with atheris.

Run it with the ``fuzz`` extra installed (``pip install -e ".[fuzz]"``)::

    python tests/fuzz/atheris_load.py -atheris_runs=200000

Each input is one byte choosing the file kind (``.safetensors``, ``.npz`` or ``.npy``)
followed by the file's bytes.  The file is read by :func:`mxarray.io.load`,
:func:`mxarray.io.describe_file` and :func:`mxarray.io.checkpoints.load_gpt_oss`; each
either succeeds or raises ValueError / OSError (the documented errors), anything else is
a crash.  What ``load`` returns is saved again and read back, and must come back bit
for bit.  The seed corpus (small valid files of every kind, written at start-up into a
temporary directory that the fuzzer then grows) is :func:`seed_corpus`.

pytest does not collect this file (no ``test_`` prefix); ``test_fuzz_files.py`` runs
:func:`test_one_input` over the seed corpus and mutations of it without atheris.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path

KINDS = (".safetensors", ".npz", ".npy")
"""File kind chosen by the first byte of an input (modulo 3)."""

_WORKDIR = Path(tempfile.mkdtemp(prefix="mxarray-atheris-"))


def seed_corpus() -> list[bytes]:
    """Inputs holding small valid files of every kind: MX arrays of several formats (padding,
    a block axis not last, sub-blocks, a tensor scale), dense tensors, a gpt-oss pair."""
    import numpy as np

    import mxarray
    from mxarray.io import save
    from mxarray.io.checkpoints import save_gpt_oss

    x = np.linspace(-3, 3, 2 * 40, dtype=np.float32).reshape(2, 40)
    contents = [
        {"w": mxarray.quantize(x, "mxfp4_e2m1"), "b": np.arange(3, dtype=np.float16)},
        {"q": mxarray.quantize(x, "mxint8", axis=0, rounding="stochastic", seed=7)},
        {"m": mxarray.quantize(x, "mx6"), "n": mxarray.quantize(x[:, :16], "nvfp4")},
        {"e": mxarray.quantize(x, "mxfp8_e5m2"), "s": np.int64(3)},
    ]
    seeds = []
    for i, arrays in enumerate(contents):
        for k, suffix in enumerate(KINDS[:2]):
            path = _WORKDIR / f"seed{i}{suffix}"
            save(path, arrays)
            seeds.append(bytes([k]) + path.read_bytes())
    path = _WORKDIR / "pair.safetensors"
    save_gpt_oss(path, {"mlp": mxarray.quantize(np.ones((2, 64), np.float32), "mxfp4_e2m1")})
    seeds.append(bytes([0]) + path.read_bytes())
    for arr in (np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros((0, 2), ">i2")):
        path = _WORKDIR / "seed.npy"
        np.save(path, arr)
        seeds.append(bytes([2]) + path.read_bytes())
    return seeds


def _same(a: object, b: object) -> bool:
    """Whether two loaded values hold the same bits (MX arrays: storage and attributes)."""
    import numpy as np

    import mxarray

    if isinstance(a, mxarray.MXArray):
        return (isinstance(b, mxarray.MXArray)
                and (a.format, a.shape, a.block_axis, a.rounding, a.scale_mode, a.seed)
                == (b.format, b.shape, b.block_axis, b.rounding, b.scale_mode, b.seed)
                and np.array_equal(np.asarray(a.tensor_scale, np.float32),
                                   np.asarray(b.tensor_scale, np.float32), equal_nan=True)
                and np.array_equal(a.packed, b.packed) and np.array_equal(a.scales, b.scales))
    a, b = (np.asarray(v) for v in (a, b))
    a, b = (v.astype(v.dtype.newbyteorder("<")) for v in (a, b))  # files store little-endian
    return (a.dtype == b.dtype and a.shape == b.shape
            and a.tobytes() == b.tobytes())


def test_one_input(data: bytes) -> None:
    """Read one input every way; raise AssertionError (or anything else) on a defect."""
    from mxarray.io import describe_file, load, save
    from mxarray.io.checkpoints import load_gpt_oss

    if not data:
        return
    suffix = KINDS[data[0] % len(KINDS)]
    path = _WORKDIR / f"input{suffix}"
    path.write_bytes(data[1:])
    try:
        loaded = load(path)
    except (ValueError, OSError):
        loaded = None
    for reader in (describe_file, load_gpt_oss):
        try:
            reader(path)
        except (ValueError, OSError):
            pass
    if loaded is None:
        return
    for again_suffix in KINDS[:2]:
        again = _WORKDIR / f"again{again_suffix}"
        try:
            save(again, loaded)
        except ValueError:
            continue  # a dtype this kind cannot hold (float8 in .npz, strings in safetensors)
        back = load(again)
        assert list(back) == list(loaded), (list(back), list(loaded))
        for name, value in loaded.items():
            assert _same(value, back[name]), f"{name!r} changed in a {again_suffix} round trip"


def main() -> None:
    """Fuzz with atheris; the seed corpus goes to a directory the fuzzer grows."""
    import atheris

    with atheris.instrument_imports(include=["mxarray", "zipfile", "json", "numpy.lib.format"]):
        importlib.import_module("mxarray.io.checkpoints")
    corpus = _WORKDIR / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(seed_corpus()):
        (corpus / f"seed{i:02d}").write_bytes(seed)
    args = [arg for arg in sys.argv]
    if not any(not arg.startswith("-") for arg in args[1:]):
        args.append(os.fspath(corpus))
    print(f"atheris_load: corpus in {corpus}", flush=True)
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
