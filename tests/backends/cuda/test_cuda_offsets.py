"""The CUDA kernels compute every array index in 64 bits: a check of their source text.

No GPU runs here, so the kernels' index arithmetic past 2**31 elements or bytes is
checked by reading ``backends/cuda/``:

- every ``__global__`` kernel takes its counts, sizes and offsets as 64-bit integers
  (the only 32-bit scalar parameters are mode selectors and float32 bit patterns);
- the thread's global number comes only from ``mx_index.cuh`` (``mx_thread_index``,
  ``mx_block_index``), which widens ``blockIdx.x`` and ``blockDim.x`` before their
  product; no other source names ``blockIdx``, ``blockDim`` or ``gridDim``, and every
  kernel calls one of the helpers;
- in every function, a value derived from a 64-bit index (a 64-bit parameter, the
  helpers, a local computed from them) never lands in a 32-bit integer: not by a
  declaration, a cast, a loop counter, or an argument to a 32-bit parameter of another
  function of the sources.  The one narrowing allowed is ``(int)(i % C)`` with a
  constant ``C`` (a lane within a block), and values read *through* an index (``a[i]``)
  are not indices.  Small loop counters over a block or a thread block stay ``int``.

The launcher side (grid sizes on the host) is checked in Python at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from mxarray import _cuda_sources

CUDA = _cuda_sources.cuda_dir()
INDEX_HEADER = "mx_index.cuh"
HELPERS = ("mx_thread_index", "mx_block_index")
INT64 = {"long long", "long long int", "size_t", "ptrdiff_t", "int64_t"}
# long is 32-bit on Windows: counted as 32-bit, as it is not portably wider
INT32 = {"int", "unsigned", "unsigned int", "short", "unsigned short", "mx_u32", "char",
         "unsigned char", "long", "unsigned long"}
INTEGER = INT64 | INT32 | {"mx_u64", "unsigned long long", "uint64_t"}
# 32-bit kernel parameters that are never a count, size or offset (shift: a power-of-two
# exponent below 600 in magnitude; min_byte: a scale byte)
NOT_INDICES = {"rounding", "scale_mode", "tensor_scale", "a_tensor_scale", "b_tensor_scale",
               "shift", "min_byte"}
# Reviewed narrowings of index-derived values to int, with the reason each is small.
REVIEWED = {
    ("mx_mma_tile_shift", "c"): "the bit length of n_kb - 1: at most 64",
}
_KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "defined"}
_FUNCTION = re.compile(r"\b(\w+)\s*\(([^()]*)\)\s*\{")
_TYPE = (r"\b(?:const\s+)?((?:unsigned\s+|signed\s+)?"
         r"(?:long\s+long(?:\s+int)?|long|int|short|char|unsigned)"
         r"|size_t|ptrdiff_t|int64_t|uint64_t|mx_u32|mx_u64)")
_DECLARATION = re.compile(_TYPE + r"\s+(\w+)\s*=\s*([^;]*);")
_FOR = re.compile(r"\bfor\s*\(\s*" + _TYPE + r"\s+(\w+)\s*=\s*([^;]*);([^;]*);")
_CAST = re.compile(r"\(\s*(int|unsigned|unsigned int|short|mx_u32|long)\s*\)\s*")
# (int)(i % C) with C a constant: a literal, a macro, or a constexpr format's field
_MODULO = re.compile(r"^\(\s*(?:int|unsigned)\s*\)\s*\(\s*\w+\s*%\s*"
                     r"(?:\d+|[A-Z][A-Z0-9_]*|k[A-Z]\w*\.\w+)\s*\)$")


@dataclass
class Function:
    """One function definition in a CUDA source: name, parameters, body, kernel or not."""

    file: str
    name: str
    params: list[tuple[str, str]]  # scalar ones: (type without const / __restrict__, name)
    body: str
    kernel: bool


def _clean(text: str) -> str:
    """Source text without comments, with macro line continuations joined."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", "", text)
    return text.replace("\\\n", " ")


def _matching(text: str, open_at: int, pair: str = "{}") -> int:
    """Index just past the bracket that closes the one at ``open_at``."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += (text[i] == pair[0]) - (text[i] == pair[1])
        if depth == 0:
            return i + 1
    raise ValueError(f"unbalanced {pair} from offset {open_at}")


def _parse_params(params: str) -> list[tuple[str, str]]:
    """(type, name) of each scalar parameter (pointers, references and arrays left out)."""
    scalars = []
    for raw in filter(None, (p.strip() for p in params.split(","))):
        name = re.findall(r"\w+", raw)[-1]
        if not any(c in raw for c in "*&["):
            kind = re.sub(r"\b(const|__restrict__)\b", " ", raw[: raw.rindex(name)])
            scalars.append((" ".join(kind.split()), name))
    return scalars


def parse(file: str, text: str) -> list[Function]:
    """Every function definition of a source (macro bodies included)."""
    text = _clean(text)
    found, pos = [], 0
    while (match := _FUNCTION.search(text, pos)) is not None:
        name = match.group(1)
        if name in _KEYWORDS:
            pos = match.end()
            continue
        end = _matching(text, match.end() - 1)
        head = text[max(text.rfind(";", 0, match.start()), text.rfind("}", 0, match.start()))
                    + 1 : match.start()]
        found.append(Function(file, name, _parse_params(match.group(2)),
                              text[match.end() : end - 1], "__global__" in head))
        pos = end
    return found


def sources() -> dict[str, str]:
    """Every CUDA source and header, by file name."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(CUDA.glob("*.cu*"))}


def _without_subscripts(expr: str) -> str:
    """``expr`` with every ``[...]`` removed: a value read through an index is no index."""
    while (stripped := re.sub(r"\[[^\[\]]*\]", "", expr)) != expr:
        expr = stripped
    return expr


def _without_call_arguments(expr: str) -> str:
    """``expr`` with the arguments of every call removed (but min and max, whose result
    is one of them): a function of an index (a code, a random draw) is no index."""
    out, pos = [], 0
    for call in re.finditer(r"\b(\w+)\s*\(", expr):
        if call.start() < pos or call.group(1) in ("min", "max") or call.group(1) in INTEGER:
            continue
        out.append(expr[pos : call.end()])
        pos = _matching(expr, call.end() - 1, "()") - 1
    return "".join(out) + expr[pos:]


def _uses(expr: str, names: set[str]) -> bool:
    """Whether ``expr`` computes with an index: one of ``names`` or a helper's result."""
    if any(re.search(rf"\b{h}\s*\(", expr) for h in HELPERS):
        return True
    words = set(re.findall(r"\b\w+\b", _without_call_arguments(_without_subscripts(expr))))
    return bool(words & names)


def _split_args(args: str) -> list[str]:
    out, depth, start = [], 0, 0
    for i, c in enumerate(args):
        depth += (c in "([{") - (c in ")]}")
        if c == "," and depth == 0:
            out.append(args[start:i])
            start = i + 1
    return out + [args[start:]]


def narrowings(fn: Function, signatures: dict[str, list[str]]) -> list[str]:
    """Places in ``fn`` where an index-derived value is stored, cast or passed as 32 bits."""
    tainted = {name for kind, name in fn.params if kind in INT64}
    problems = []
    where = f"{fn.file}:{fn.name}"
    for kind, name, init in _DECLARATION.findall(fn.body):
        kind = " ".join(kind.split())
        if not _uses(init, tainted):
            continue
        if kind not in INT32:
            tainted.add(name)
        elif not _MODULO.match(init.strip()) and (fn.name, name) not in REVIEWED:
            problems.append(f"{where}: 32-bit {kind} {name} = {init.strip()}")
    for kind, name, init, cond in _FOR.findall(fn.body):
        if " ".join(kind.split()) in INT32 and (_uses(init, tainted) or _uses(cond, tainted)):
            problems.append(f"{where}: 32-bit loop counter {kind} {name} runs to {cond.strip()}")
    for cast in _CAST.finditer(fn.body):
        rest = fn.body[cast.end():]
        operand = (rest[: _matching(rest, 0, "()")] if rest.startswith("(")
                   else re.match(r"[\w.]*", rest).group(0))
        text = fn.body[cast.start() : cast.end() + len(operand)]
        if _uses(operand, tainted) and not _MODULO.match(text):
            problems.append(f"{where}: cast to {cast.group(1)} of {operand}")
    for callee, kinds in signatures.items():
        for call in re.finditer(rf"\b{callee}\s*\(", fn.body):
            close = _matching(fn.body, call.end() - 1, "()")
            args = _split_args(fn.body[call.end() : close - 1])
            for kind, arg in zip(kinds, args):
                if kind in INT32 and _uses(arg, tainted):
                    problems.append(f"{where}: {arg.strip()} passed to {kind} of {callee}")
    return problems


def signatures(texts: dict[str, str], functions: list[Function]) -> dict[str, list[str]]:
    """Each function's parameter kinds by position ("" for pointers and references)."""
    out = {}
    for fn in functions:
        params = re.search(rf"\b{fn.name}\s*\(([^()]*)\)\s*\{{", _clean(texts[fn.file])).group(1)
        out[fn.name] = [(_parse_params(p) or [("", "")])[0][0]
                        for p in filter(None, (q.strip() for q in params.split(",")))]
    return out


def check(texts: dict[str, str]) -> dict[str, list[str]]:
    """The violations of each rule (module docstring) in the sources ``texts``."""
    functions = [fn for file, text in texts.items() for fn in parse(file, text)]
    index_text = _clean(texts[INDEX_HEADER])
    kinds = signatures(texts, functions)
    return {
        "kernel parameters that must be 64-bit": [
            f"{fn.file}:{fn.name}: {kind} {name}" for fn in functions if fn.kernel
            for kind, name in fn.params if kind in INT32 and name not in NOT_INDICES],
        f"sources naming blockIdx/blockDim/gridDim (use {INDEX_HEADER})": [
            f for f, text in texts.items()
            if f != INDEX_HEADER and re.search(r"\b(blockIdx|blockDim|gridDim)\b", _clean(text))],
        f"kernels not taking their index from {INDEX_HEADER}": [
            f"{fn.file}:{fn.name}" for fn in functions if fn.kernel
            and not any(re.search(rf"\b{h}\s*\(\)", fn.body) for h in HELPERS)],
        "helpers that do not widen before multiplying": [
            use.group(0) for use in re.finditer(r"\b(blockIdx|blockDim|threadIdx|gridDim)\.[xyz]",
                                                 index_text)
            if not index_text[: use.start()].rstrip().endswith("(long long)")
        ] + [h for h in HELPERS if not re.search(rf"long long\s+{h}\s*\(\)", index_text)],
        "index values narrowed to 32 bits": [
            p for fn in functions for p in narrowings(fn, kinds)],
    }


@pytest.fixture(scope="module")
def problems() -> dict[str, list[str]]:
    return check(sources())


def test_the_parser_finds_every_kernel() -> None:
    """Each kernel source defines kernels, and the parser sees each of them (macro-made
    ones included) with its parameters."""
    functions = [fn for file, text in sources().items() for fn in parse(file, text)]
    kernels = [fn for fn in functions if fn.kernel]
    assert {fn.file for fn in kernels} == set(_cuda_sources.KERNEL_SOURCES)
    assert {"NAME", "mx_matmul_mma", "mx_dequantize_f32", "mx_matmul_block"} <= {
        fn.name for fn in kernels}
    mma = next(fn for fn in kernels if fn.name == "mx_matmul_mma")
    assert ("long long", "n_kb") in mma.params
    assert len([fn for fn in functions if not fn.kernel]) > 40  # the device helpers


@pytest.mark.parametrize("rule", list(check(sources())))
def test_rule_holds(problems, rule: str) -> None:
    assert not problems[rule], f"{rule}:\n" + "\n".join(problems[rule])


def test_reviewed_narrowings_still_exist() -> None:
    """Each allowed exception names a variable that is still there (no stale entries)."""
    functions = [fn for file, text in sources().items() for fn in parse(file, text)]
    declared = {(fn.name, name) for fn in functions for _, name, _ in _DECLARATION.findall(fn.body)}
    assert set(REVIEWED) <= declared


REGRESSIONS = [
    pytest.param("mx_pack.cu", "long long n_groups", "int n_groups",
                 "kernel parameters that must be 64-bit", id="int-kernel-parameter"),
    pytest.param("mx_pack.cu", "const long long g = mx_thread_index();",
                 "const long long g = blockIdx.x * blockDim.x + threadIdx.x;",
                 "sources naming", id="32-bit-thread-product"),
    pytest.param("mx_dequantize.cu", "const long long t = mx_thread_index();",
                 "const int t = mx_thread_index();", "index values narrowed", id="int-index-local"),
    pytest.param("mx_dot.cuh", "for (long long kb = 0; kb < n_kb; ++kb)",
                 "for (int kb = 0; kb < n_kb; ++kb)", "index values narrowed",
                 id="int-loop-counter"),
    pytest.param("mx_arith.cuh", "long long b, int block_size", "int b, int block_size",
                 "index values narrowed", id="int-helper-parameter"),
    pytest.param("mx_matmul_simple.cu", "const long long a_row = bat * m + row;",
                 "const long long a_row = (int)(bat * m) + row;", "index values narrowed",
                 id="int-cast"),
    pytest.param("mx_quantize.cu", "(int)(t % MX_QUANTIZE_LANES)", "(int)(t % n_blocks)",
                 "index values narrowed", id="int-modulo-a-count"),
    pytest.param("mx_index.cuh", "(long long)blockIdx.x * (long long)blockDim.x",
                 "(long long)(blockIdx.x * blockDim.x)", "helpers that do not widen",
                 id="helper-product-in-32-bits"),
    pytest.param("mx_index.cuh", "long long mx_thread_index", "unsigned mx_thread_index",
                 "helpers that do not widen", id="helper-returns-32-bits"),
]


@pytest.mark.parametrize(("file", "old", "new", "rule"), REGRESSIONS)
def test_an_injected_regression_is_caught(file: str, old: str, new: str, rule: str) -> None:
    """A source edited back to 32-bit arithmetic breaks the named rule, and only a copy of
    the text is edited (the files are not touched)."""
    texts = sources()
    assert old in texts[file], (file, old)
    texts[file] = texts[file].replace(old, new, 1)
    broken = [r for r, found in check(texts).items() if found]
    assert any(r.startswith(rule) for r in broken), broken


# -- the host side: grid sizes ----------------------------------------------------------

def test_launch_grids_stay_within_the_grid_limit() -> None:
    """Grids of up to 2**31 - 1 thread blocks launch; a larger one is refused with a clear
    error instead of a driver failure (the kernels' 64-bit indices reach any size the
    grid can express)."""
    from mxarray.backends import cupy_backend

    threads = cupy_backend._THREADS
    assert cupy_backend._grid((2**31 - 1) * threads) == (2**31 - 1,)
    assert cupy_backend._grid(2**38) == (2**38 // threads,)
    with pytest.raises(ValueError, match="grid"):
        cupy_backend._grid((2**31 - 1) * threads + 1)
    tile = cupy_backend._MMA_TILE
    assert cupy_backend._mma_grid(1, tile, tile) == (1,)
    with pytest.raises(ValueError, match="grid"):
        cupy_backend._mma_grid(2**20, 2**12 * tile, tile)


def test_sources_are_all_seen() -> None:
    """The checks read every file of backends/cuda (headers and kernels)."""
    names = set(sources())
    assert INDEX_HEADER in names and set(_cuda_sources.KERNEL_SOURCES) <= names
    assert all(Path(CUDA / n).suffix in (".cu", ".cuh") for n in names)
