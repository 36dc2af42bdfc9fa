"""Every CUDA kernel source compiles with NVRTC, as CuPy compiles it, for sm_80/89/90/90a.

Runs without a GPU or driver: ``cupy.cuda.nvrtc`` loads libnvrtc from the pip package
(nvidia-cuda-nvrtc) and needs no device.  Options mirror CuPy's RawModule (it appends
``-ftz=true``; multiply-add contraction is NVRTC's default) plus warnings as errors, and
ptxas reports (``-v``) show that the quantize kernels (OCP and block formats) and the
tensor-core matmul spill no registers, the matmul keeps no stack frame (its
accumulators stay in registers), and the two-pass fold kernels (mx_fold_bf16.cu) keep a
whole block's codes and values in registers (no stack frame, no spill).
NVRTC 13 takes ``--warning-as-error=all-warnings``; NVRTC 12 has no such option, so on
every version the test also fails on any warning in the compile log.
"""

from __future__ import annotations

import re

import pytest

from mxarray import _cuda_sources
from mxarray.backends.cupy_backend import BLOCK_KERNEL_FORMATS
from mxarray.formats import BLOCK_FORMATS, FORMATS

pytest.importorskip("cupy", reason="needs CuPy and NVRTC (pip install mxarray[cuda])")
from cupy.cuda import nvrtc  # noqa: E402  (an alias of cupy_backends' NVRTC binding)
from support.backend_calls import dopts, matmul_codes, qopts

ARCHS = ["sm_80", "sm_89", "sm_90", "sm_90a"]
WERROR = ["--warning-as-error=all-warnings"] if nvrtc.getVersion() >= (13, 0) else []
OPTIONS = ["-std=c++17", "-ftz=true", *WERROR, "--ptxas-options=-v",
           "--ptxas-options=--warn-on-spills", "--ptxas-options=--warning-as-error"]
FORMAT_PAIRS = [(f, f) for f in FORMATS] + [("mxfp4_e2m1", "mxfp8_e4m3"), ("mxint8", "mxfp6_e2m3")]
# the block-format sources: every format with kernels alone, and mixed pairs for the matmul
BLOCK_SINGLES = [(f,) for f in BLOCK_KERNEL_FORMATS]
BLOCK_PAIRS = [(f, f) for f in BLOCK_KERNEL_FORMATS] + [
    ("nvfp4", "mx9"), ("mx4", "mxfp8_e4m3"), ("mxfp8_e5m2", "nvfp4"), ("mx6", "mxint8")]
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_STACK = re.compile(r"(\d+) bytes stack frame")
_REGISTERS = re.compile(r"Used (\d+) registers")


def compile_source(source: str, formats: tuple[str, ...], arch: str) -> str:
    """Compile ``source`` to a cubin; return the NVRTC log (raises on any error)."""
    macros = _cuda_sources.KERNEL_SOURCES[source]
    defs = _cuda_sources.compile_definitions(
        {macro: BLOCK_FORMATS[name] for macro, name in zip(macros, formats)}
    )
    prog = nvrtc.createProgram(_cuda_sources.read_source(source), source, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, [*defs, f"-arch={arch}", *OPTIONS])
        except nvrtc.NVRTCError as exc:
            pytest.fail(f"{source} ({formats}, {arch}) failed: {exc}\n{nvrtc.getProgramLog(prog)}")
        assert len(nvrtc.getCUBIN(prog)) > 0
        log = nvrtc.getProgramLog(prog)
        log = log.decode() if isinstance(log, bytes) else log
        assert "warning" not in log.lower(), log
        return log
    finally:
        nvrtc.destroyProgram(prog)


def _cases() -> list:
    cases = []
    for source, macros in _cuda_sources.KERNEL_SOURCES.items():
        if source in _cuda_sources.BLOCK_SOURCES:
            pairs = BLOCK_PAIRS if len(macros) == 2 else BLOCK_SINGLES
        else:
            pairs = FORMAT_PAIRS if len(macros) == 2 else [(f,) for f in FORMATS]
        if source == "mx_fold_bf16.cu":  # every format: OCP bytes and block-format codes
            pairs = pairs + BLOCK_SINGLES
        for formats in pairs:
            cases.append(pytest.param(source, formats, id=f"{source}-{'-'.join(formats)}"))
    return cases


def test_every_kernel_source_is_listed():
    on_disk = {p.name for p in _cuda_sources.cuda_dir().glob("*.cu")}
    assert on_disk == set(_cuda_sources.KERNEL_SOURCES)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source,formats", _cases())
def test_compiles_without_warnings(source, formats, arch):
    log = compile_source(source, formats, arch)
    entries = re.findall(r"Compiling entry function '(\w+)'", log)
    assert entries, f"no ptxas report in the log:\n{log}"
    if source in ("mx_quantize.cu", "mx_block_quantize.cu"):
        prefix = source[:-3]
        assert set(entries) == {f"{prefix}_f16", f"{prefix}_f32", f"{prefix}_f64"}
        spills = _SPILLS.findall(log)
        assert len(spills) == 3 and all(s == ("0", "0") for s in spills), log
    whole_block = {  # one thread per block: the block stays in registers
        "mx_fold_bf16.cu": {"mx_fold_bf16_packed", "mx_fold_bf16_codes", "mx_two_pass_epilogue"},
        "mx_packed.cu": {"mx_quantize_packed_f16", "mx_quantize_packed_f32",
                         "mx_dequantize_packed_f32", "mx_dequantize_packed_f64"},
        "mx_block_packed.cu": {"mx_block_dequantize_packed_f32", "mx_block_dequantize_packed_f64",
                               "mx_block_quantize_packed_f16", "mx_block_quantize_packed_f32",
                               "mx_block_quantize_packed_f64"}}
    if source in whole_block:
        assert set(entries) == whole_block[source]
        assert _SPILLS.findall(log) == [("0", "0")] * len(entries), log
        assert _STACK.findall(log) == ["0"] * len(entries), log
    if source == "mx_matmul_mma.cu":
        assert entries == ["mx_matmul_mma"]
        assert _SPILLS.findall(log) == [("0", "0")], log
        assert _STACK.findall(log) == ["0"], log
        # 256 threads per block, one block per SM at most 255 registers each
        assert 0 < int(_REGISTERS.findall(log)[0]) <= 255, log


def test_a_warning_is_caught():
    """A warning (an unused variable) fails the compile or shows in the log we check."""
    prog = nvrtc.createProgram(
        'extern "C" __global__ void k(int* p) { int unused = 3; p[0] = 1; }', "w.cu", [], []
    )
    try:
        try:
            nvrtc.compileProgram(prog, ["-arch=sm_90", *OPTIONS])
            failed = False
        except nvrtc.NVRTCError:
            failed = True
        log = nvrtc.getProgramLog(prog)
        log = log.decode() if isinstance(log, bytes) else log
        assert failed or "warning" in log.lower(), log
    finally:
        nvrtc.destroyProgram(prog)


# --- the CuPy backend's launches against the kernels' parameter lists -------------------

_ENTRY = re.compile(r"\.entry (\w+)\(([^)]*)\)", re.DOTALL)
_PARAM = re.compile(r"\.param \.([us])(\d+) ")


def _ptx_parameters(source: str, formats: tuple) -> dict[str, list[int]]:
    """Each kernel's parameter sizes in bytes, from NVRTC's PTX for ``source``."""
    macros = _cuda_sources.KERNEL_SOURCES[source]
    defs = _cuda_sources.compile_definitions(dict(zip(macros, formats)))
    prog = nvrtc.createProgram(_cuda_sources.read_source(source), source, [], [])
    try:
        nvrtc.compileProgram(prog, [*defs, "-arch=sm_90", "-std=c++17", "-ftz=true"])
        ptx = nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    return {name: [int(bits) // 8 for _, bits in _PARAM.findall(params)]
            for name, params in _ENTRY.findall(ptx)}


def test_backend_launches_match_the_kernel_parameters(monkeypatch):
    """Every launch of the block-format paths (and of the OCP quantize and dequantize, with
    block_ids and misaligned views) passes as many arguments as its kernel takes, each of
    the kernel's size (arrays as 8-byte pointers), with host arrays standing in for device
    arrays: a CPU check of the launch code that otherwise runs only on a GPU."""
    import numpy as np

    from mxarray.backends import cupy_backend

    launches = []

    class Module:
        def __init__(self, source, formats):
            self.key = (source, formats)

        def get_function(self, name):
            return lambda grid, block, args: launches.append((self.key, name, args))

    monkeypatch.setattr(cupy_backend, "_module", Module)
    monkeypatch.setattr(cupy_backend.CupyBackend, "xp", property(lambda self: np))
    gpu = cupy_backend.CupyBackend(matmul_kernel="simple")
    nvfp4, mx9 = BLOCK_FORMATS["nvfp4"], BLOCK_FORMATS["mx9"]
    ids = np.arange(3, dtype=np.uint64)
    for fmt in (BLOCK_FORMATS[n] for n in BLOCK_KERNEL_FORMATS):
        kw = {"tensor_scale": 0.5} if fmt is nvfp4 else {}
        for dtype in (np.float16, np.float32, np.float64):
            blocks = np.ones((3, fmt.block_size), dtype)
            rounding = "even" if fmt is nvfp4 else "stochastic"
            codes, scales = gpu.quantize_blocks(blocks, qopts(fmt, rounding, "floor", 1, block_ids=ids, **kw))
            assert codes.dtype == fmt.code_dtype and codes.shape == blocks.shape
        gpu.dequantize_blocks(codes, scales, dopts(fmt, np.float32, **kw))
        gpu.dequantize_blocks(codes, scales, dopts(fmt, np.float64, **kw))
        packed = gpu.pack(codes, fmt)
        assert packed.shape == (3, fmt.bytes_per_block) and packed.dtype == np.uint8
        assert gpu.unpack(packed, fmt).dtype == fmt.code_dtype
    gpu.quantize_blocks(np.ones((3, 32), np.float32), qopts(FORMATS["mxint8"], "stochastic", "floor", 1, block_ids=ids))
    # OCP views off the vector loads' alignment are copied before the launch
    buffer = np.zeros(3 * 32 * 8 + 16, np.uint8)
    start = -buffer.ctypes.data % 16 + 4  # 4 bytes past a 16-byte boundary
    for dtype in (np.float16, np.float32, np.float64):
        nbytes = 3 * 32 * np.dtype(dtype).itemsize
        view = buffer[start:start + nbytes].view(dtype).reshape(3, 32)
        codes, scales = gpu.quantize_blocks(view, qopts(FORMATS["mxfp6_e2m3"], "even", "ceil", None))
        assert launches[-1][2][0].ctypes.data % min(4 * view.itemsize, 16) == 0
        assert launches[-1][2][3] == 3  # rows
    odd_codes = buffer[1:1 + 3 * 32].reshape(3, 32)
    for dtype in (np.float32, np.float64):
        gpu.dequantize_blocks(odd_codes, scales, dopts(FORMATS["mxfp6_e2m3"], dtype))
        assert launches[-1][2][0].ctypes.data % 4 == 0
        assert launches[-1][2][3] == 3 * 32 // 4  # groups of 4 codes
    ac = np.zeros((1, 2, 3, 16), np.uint16)
    bc = np.zeros((1, 4, 2, 16), np.uint8)
    out = matmul_codes(gpu, ac, np.zeros((1, 2, 3), np.uint8), mx9, bc, np.zeros((1, 4, 2), np.uint8), nvfp4, b_tensor_scale=2.0)
    assert out.shape == (1, 2, 4) and out.dtype == np.float32
    # the fused packed quantize (float16/32) and dequantize of the OCP formats
    for dtype in (np.float16, np.float32):
        fp4_options = qopts(FORMATS["mxfp4_e2m1"], "stochastic", "floor", 1, block_ids=ids)
        packed, scales = gpu.quantize(np.ones((3, 32), dtype), fp4_options)
    for dtype in (np.float32, np.float64):
        gpu.dequantize(packed, scales, dopts(FORMATS["mxfp4_e2m1"], dtype))
        gpu.dequantize(np.zeros((3, 17), np.uint8), scales, dopts(mx9, dtype))
    for dtype in (np.float16, np.float32, np.float64):
        gpu.quantize(np.ones((3, 16), dtype), qopts(mx9, "stochastic", "floor", 1, block_ids=ids))
        gpu.quantize(np.ones((3, 16), dtype), qopts(nvfp4, tensor_scale=0.5))
    # the two-pass path: fold kernels for OCP bytes and block-format codes, the epilogue
    monkeypatch.setattr(cupy_backend, "_gemm_bf16", lambda a, b, out, k, accumulate: None)
    fp6 = FORMATS["mxfp6_e3m2"]
    out = matmul_codes(gpu, np.zeros((1, 2, 1, 32), np.uint8), np.full((1, 2, 1), 127, np.uint8),
                       fp6, ac, np.full((1, 2, 3), 127, np.uint8), mx9, path="two-pass")
    assert out.shape == (1, 2, 2)
    # options are checked once, by the core (backend contract): not here

    parameters = {}
    for key, name, args in launches:
        if key not in parameters:
            parameters[key] = _ptx_parameters(*key)
        want = parameters[key][name]
        got = [8 if isinstance(a, np.ndarray) else np.dtype(type(a)).itemsize for a in args]
        assert got == want, (key[0], name)
    assert {name for _, name, _ in launches} >= {
        "mx_block_quantize_f16", "mx_block_quantize_f64", "mx_block_dequantize_f32",
        "mx_block_dequantize_f64", "mx_block_pack", "mx_block_unpack", "mx_matmul_block",
        "mx_quantize_f16", "mx_quantize_f32", "mx_quantize_f64", "mx_dequantize_f32",
        "mx_dequantize_f64", "mx_fold_bf16_packed", "mx_fold_bf16_codes", "mx_two_pass_epilogue",
        "mx_quantize_packed_f16", "mx_quantize_packed_f32", "mx_dequantize_packed_f32",
        "mx_dequantize_packed_f64", "mx_block_dequantize_packed_f32",
        "mx_block_dequantize_packed_f64", "mx_block_quantize_packed_f16",
        "mx_block_quantize_packed_f32", "mx_block_quantize_packed_f64"}
