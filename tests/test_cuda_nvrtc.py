"""Every CUDA kernel source compiles with NVRTC, as CuPy compiles it, for sm_80/89/90.

Runs without a GPU or driver: ``cupy.cuda.nvrtc`` loads libnvrtc from the pip package
(nvidia-cuda-nvrtc) and needs no device.  Options mirror CuPy's RawModule (it appends
``-ftz=true``; multiply-add contraction is NVRTC's default) plus warnings as errors, and
ptxas reports (``-v``) show that the quantize kernels and the tensor-core matmul spill no
registers and the matmul keeps no stack frame (its accumulators stay in registers).
NVRTC 13 takes ``--warning-as-error=all-warnings``; NVRTC 12 has no such option, so on
every version the test also fails on any warning in the compile log.
"""

from __future__ import annotations

import re

import pytest

from mxarray import _cuda_sources
from mxarray.formats import FORMATS

pytest.importorskip("cupy", reason="needs CuPy and NVRTC (pip install mxarray[cuda])")
from cupy.cuda import nvrtc  # noqa: E402  (an alias of cupy_backends' NVRTC binding)

ARCHS = ["sm_80", "sm_89", "sm_90"]
WERROR = ["--warning-as-error=all-warnings"] if nvrtc.getVersion() >= (13, 0) else []
OPTIONS = ["-std=c++17", "-ftz=true", *WERROR, "--ptxas-options=-v",
           "--ptxas-options=--warn-on-spills", "--ptxas-options=--warning-as-error"]
FORMAT_PAIRS = [(f, f) for f in FORMATS] + [("mxfp4_e2m1", "mxfp8_e4m3"), ("mxint8", "mxfp6_e2m3")]
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_STACK = re.compile(r"(\d+) bytes stack frame")
_REGISTERS = re.compile(r"Used (\d+) registers")


def compile_source(source: str, formats: tuple[str, ...], arch: str) -> str:
    """Compile ``source`` to a cubin; return the NVRTC log (raises on any error)."""
    macros = _cuda_sources.KERNEL_SOURCES[source]
    defs = _cuda_sources.compile_definitions(
        {macro: FORMATS[name] for macro, name in zip(macros, formats)}
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
        pairs = FORMAT_PAIRS if len(macros) == 2 else [(f,) for f in FORMATS]
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
    if source == "mx_quantize.cu":
        assert set(entries) == {"mx_quantize_f16", "mx_quantize_f32", "mx_quantize_f64"}
        spills = _SPILLS.findall(log)
        assert len(spills) == 3 and all(s == ("0", "0") for s in spills), log
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
