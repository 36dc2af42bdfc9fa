"""Which tensors of a checkpoint ``mxarray quantize`` quantizes, and into which format.

A tensor is quantized when all of these hold, checked in this order (the first that
fails is the reason the summary gives for keeping it):

1. its dtype is float16, bfloat16, float32 or float64, it has the block axis and that
   axis is not empty;
2. no ``exclude`` pattern matches its name (exclude wins over include);
3. ``include`` is empty or one of its patterns matches;
4. a format pattern matches (the first that does gives the format);
5. the default policy, unless it is switched off (``--all``), does not keep it: 1-D
   tensors, tensors whose block axis is shorter than one block, and names matching
   :data:`KEPT_NAMES` (layer norms, biases, embeddings, ``lm_head``) stay in their
   input precision, as quantization tools usually leave them.

Patterns are shell globs (:func:`fnmatch.fnmatchcase`, ``*`` crosses dots) on the whole
tensor name, case-sensitive; the policy's name patterns ignore case.
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
from typing import Iterable, Mapping, Sequence

from ..formats import Format, get_format
from ._container import TensorInfo

__all__ = ["QUANTIZABLE_DTYPES", "KEPT_NAMES", "Selection", "format_rules", "nothing_quantized"]

QUANTIZABLE_DTYPES = ("float16", "bfloat16", "float32", "float64")
"""Input dtypes that are quantized (bfloat16 is widened to float32 exactly first)."""

KEPT_NAMES = ("*norm*", "*bias", "*embed*", "*lm_head*")
"""Name patterns (case ignored) of the tensors the default policy keeps."""


def format_rules(fmt: str | Format | None,
                 formats: Mapping[str, str | Format] | Sequence[tuple[str, str | Format]]
                 | None = None) -> tuple[tuple[str, Format], ...]:
    """The ``(pattern, format)`` rules of ``formats`` (in order) then ``("*", fmt)``.

    Format names are looked up as :func:`mxarray.formats.get_format` does (any case).

    Raises
    ------
    ValueError
        If a format is unknown, a pattern is empty, or there is no rule at all.
    TypeError
        If ``formats`` is not a mapping or a sequence of pairs.

    Examples
    --------
    >>> from mxarray.io.selection import format_rules
    >>> [(p, f.name) for p, f in format_rules("MXFP8_E4M3", {"mlp.*": "mxfp4_e2m1"})]
    [('mlp.*', 'mxfp4_e2m1'), ('*', 'mxfp8_e4m3')]
    """
    pairs = list(formats.items()) if isinstance(formats, Mapping) else list(formats or ())
    rules = []
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise TypeError(f"formats must map glob patterns to formats, got {pair!r}")
        if not pair[0]:
            raise ValueError("a format pattern must not be empty")
        rules.append((pair[0], get_format(pair[1])))
    if fmt is not None:
        rules.append(("*", get_format(fmt)))
    if not rules:
        raise ValueError("name a format to quantize into (fmt, or formats by pattern)")
    return tuple(rules)


def _first(name: str, patterns: Iterable[str]) -> str | None:
    return next((p for p in patterns if fnmatch.fnmatchcase(name, p)), None)


@dataclasses.dataclass(frozen=True)
class Selection:
    """What to quantize: format rules, include / exclude globs and the default policy.

    Examples
    --------
    >>> from mxarray.io._container import TensorInfo
    >>> from mxarray.io.selection import Selection, format_rules
    >>> s = Selection(format_rules("mxfp4_e2m1"), exclude=("*.gate*",))
    >>> w = TensorInfo("bfloat16", (64, 64), 8192)
    >>> s.choose("layers.0.mlp.up.weight", w, -1)[0].name
    'mxfp4_e2m1'
    >>> s.choose("layers.0.input_layernorm.weight", TensorInfo("float32", (64,), 256), -1)
    (None, None, '1-D (policy)')
    >>> s.choose("model.embed_tokens.weight", w, -1)
    (None, None, 'policy: *embed*')
    >>> s.choose("layers.0.mlp.gate.weight", w, -1)
    (None, None, 'excluded: *.gate*')
    """

    rules: tuple[tuple[str, Format], ...]
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    policy: bool = True
    """Whether the default policy keeps 1-D, short and :data:`KEPT_NAMES` tensors."""

    def __post_init__(self) -> None:
        for field in ("include", "exclude"):
            value = getattr(self, field)
            if isinstance(value, str):
                raise TypeError(f"{field} must be a list of glob patterns, not the string "
                                f"{value!r}")
            value = tuple(value or ())
            if not all(isinstance(p, str) and p for p in value):
                raise ValueError(f"{field} patterns must be non-empty strings, got {value!r}")
            object.__setattr__(self, field, value)

    def choose(self, name: str, info: TensorInfo, axis: int
               ) -> tuple[Format | None, int | None, str]:
        """The format and block axis (non-negative) to quantize a tensor into, or
        ``(None, None, why)`` when it is kept as it is."""
        if info.dtype not in QUANTIZABLE_DTYPES:
            return None, None, "not floating" if info.dtype[:5] != "float" else info.dtype
        if not info.shape:
            return None, None, "0-d"
        if not -len(info.shape) <= axis < len(info.shape):
            return None, None, f"no axis {axis}"
        if 0 in info.shape:
            return None, None, "empty"
        ax = axis % len(info.shape)
        excluded = _first(name, self.exclude)
        if excluded is not None:
            return None, None, f"excluded: {excluded}"
        if self.include and _first(name, self.include) is None:
            return None, None, "not included"
        fmt = next((f for p, f in self.rules if fnmatch.fnmatchcase(name, p)), None)
        if fmt is None:
            return None, None, "no format pattern"
        if self.policy:
            if len(info.shape) == 1:
                return None, None, "1-D (policy)"
            if info.shape[ax] < fmt.block_size:
                return None, None, f"axis < {fmt.block_size} (policy)"
            kept = _first(name.lower(), KEPT_NAMES)
            if kept is not None:
                return None, None, f"policy: {kept}"
        return fmt, ax, ""

    def describe(self) -> str:
        """One line for the summary: the format rules, the globs and the policy."""
        rules = ", ".join(f.name if p == "*" else f"{p}={f.name}" for p, f in self.rules)
        parts = [f"formats {rules}"]
        if self.include:
            parts.append(f"include {', '.join(self.include)}")
        if self.exclude:
            parts.append(f"exclude {', '.join(self.exclude)}")
        parts.append(
            "default policy: 1-D tensors, block axis shorter than one block and names "
            f"matching {', '.join(KEPT_NAMES)} (any case) stay in input precision "
            "(--all quantizes every floating tensor)" if self.policy
            else "every floating tensor (--all)")
        return "; ".join(parts)


def nothing_quantized(reasons: Iterable[str]) -> str:
    """The message for a run that would quantize no tensor: how many were kept, and why."""
    counts = collections.Counter(reasons)
    why = ", ".join(f"{n} {reason}" for reason, n in counts.most_common())
    return f"nothing to quantize: no tensor was selected ({why or 'the input is empty'})"
