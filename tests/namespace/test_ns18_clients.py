"""Real clients of the standard on mxarray: scikit-learn and SciPy.

Every scikit-learn estimator whose tags declare array API support (the instances
scikit-learn's own ``check_array_api_input`` tests, in the installed scikit-learn) and
every array-API-aware function of ``scipy.special`` and ``scipy.stats`` (SciPy's
``xp_capabilities`` table, NumPy-only ones left out) runs on mxarray float64, float32 and
MX (mxfp8_e4m3) arrays and must agree with the same call on NumPy input (for MX input:
NumPy arrays holding the dequantized values, in float32, or in float64 where the client
computes MX input in float64, as scikit-learn 1.9.1's input validation does for every
dtype that is not a standard floating one), within
the tolerances scikit-learn's array API tests use (``_atol_for_type`` of the dtype,
scikit-learn's ``assert_allclose``).  The data are scikit-learn's check data made full
rank (no redundant features), so that every fitted quantity is well defined.  A case is
skipped only where the NumPy call itself fails, with NumPy's error as the reason; the
MX cases listed in ``MX_REFUSED`` are expected failures, documented in
docs/array_api.md.

scikit-learn's array API dispatch needs ``SCIPY_ARRAY_API=1`` before SciPy is imported,
so everything runs in subprocesses (this file run as a script): one lists the cases at
collection, one runs them all, and the parametrised tests read its per-case results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="needs the optional scikit-learn")
pytest.importorskip("scipy", reason="needs the optional SciPy")

KINDS = ("float64", "float32", "mxfp8_e4m3")
_METHODS = ("score", "score_samples", "decision_function", "predict", "predict_log_proba",
            "predict_proba", "transform")


# -- the cases (run in the subprocess; the listing also at collection) -------------------

def _estimators() -> dict[str, Any]:
    """The estimator instances scikit-learn tests for array API input, by test id."""
    from sklearn.utils._test_common.instance_generator import (
        _tested_estimators, _yield_instances_for_check)
    from sklearn.utils.estimator_checks import check_array_api_input

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in _tested_estimators():
            for inst in _yield_instances_for_check(check_array_api_input, est):
                if inst.__sklearn_tags__().array_api_support:
                    inner = getattr(inst, "estimator", None)
                    name = type(inst).__name__ + (f"({type(inner).__name__})" if inner else "")
                    out[name] = inst
    return out


def _scipy_functions() -> dict[str, Any]:
    """The array-API-aware public functions of scipy.special and scipy.stats, by id."""
    import scipy.special  # noqa: F401 - fills the capabilities table
    import scipy.stats  # noqa: F401
    from scipy._lib._array_api import xp_capabilities_table

    out = {}
    for func, caps in xp_capabilities_table.items():
        module, name = getattr(func, "__module__", "") or "", getattr(func, "__name__", "")
        package = module.split(".")[1] if module.startswith("scipy.") else ""
        if package in ("special", "stats") and not name.startswith("_") \
                and not caps["np_only"] and not caps["out_of_scope"]:
            out[f"{package}.{name}"] = func
    return out


def _converter(kind: str, mx_reference: str = "float32") -> Any:
    """A function giving, for a NumPy array, the NumPy reference and the mxarray input of
    ``kind`` (for an MX kind, the reference holds the dequantized values in
    ``mx_reference``)."""
    import mxarray as mx

    def convert(values: np.ndarray) -> tuple[np.ndarray, Any]:
        if kind in ("float64", "float32"):
            ref = values.astype(kind)
            return ref, mx.asarray(ref)
        q = mx.asarray(values.astype(np.float32), dtype=getattr(mx, kind))
        return np.asarray(q).astype(mx_reference), q

    return convert


def _close(ours: Any, ref: Any, dtype: np.dtype, what: str) -> None:
    """scikit-learn's comparison of an array API result with the NumPy one."""
    from sklearn.utils._array_api import _atol_for_type
    from sklearn.utils._testing import assert_allclose

    if isinstance(ref, dict):
        for key in ref:
            _close(ours[key], ref[key], dtype, f"{what}[{key!r}]")
        return
    if isinstance(ref, (tuple, list)) and not isinstance(ref, np.ndarray):
        assert len(ours) == len(ref), what
        for i, (o, r) in enumerate(zip(ours, ref)):
            _close(o, r, dtype, f"{what}[{i}]")
        return
    if not hasattr(ref, "shape") and hasattr(ref, "__dict__") and not callable(ref):
        fields = ref._asdict() if hasattr(ref, "_asdict") else vars(ref)
        for key, value in fields.items():
            if not key.startswith("_"):
                _close(getattr(ours, key), value, dtype, f"{what}.{key}")
        return
    if ref is None or callable(ref):
        return
    ours_np = np.asarray(ours)
    ref_np = np.asarray(ref)
    assert ours_np.shape == ref_np.shape, f"{what}: shape {ours_np.shape} != {ref_np.shape}"
    if ref_np.dtype.kind in "fc" or ours_np.dtype.kind in "fc":
        assert_allclose(ours_np, ref_np, atol=_atol_for_type(dtype), err_msg=what)
    else:
        np.testing.assert_array_equal(ours_np, ref_np, err_msg=what)


def _either_precision(check: Any, target: Any, kind: str) -> str:
    """``check(target, kind, reference)`` for float32 and float64 references of MX input
    (the first that agrees); dense kinds are their own reference."""
    if not kind.startswith("mx"):
        return check(target, kind, kind)
    try:
        return check(target, kind, "float32")
    except AssertionError:
        return check(target, kind, "float64")


def _check_estimator(est: Any, kind: str, reference: str) -> str:
    """``"ok"``, or ``"skip: <why>"`` where NumPy input fails; raises on a disagreement."""
    from sklearn.base import clone
    from sklearn.datasets import make_classification
    from sklearn.utils._testing import set_random_state
    from sklearn.utils.estimator_checks import _enforce_estimator_tags_X, _enforce_estimator_tags_y
    from sklearn import config_context

    import mxarray as mx

    X, y = make_classification(n_samples=30, n_features=10, n_informative=6, n_redundant=0,
                               random_state=42)
    X = _enforce_estimator_tags_X(est, X)
    y = _enforce_estimator_tags_y(est, y)
    X_ref, X_ours = _converter(kind, reference)(X)
    y_ours = mx.asarray(y)
    ref = clone(est)
    set_random_state(ref)
    ours = clone(ref)
    try:
        ref.fit(X_ref, y)
    except Exception as exc:  # NumPy input itself is invalid
        return f"skip: NumPy input fails in fit: {type(exc).__name__}: {exc}"
    with config_context(array_api_dispatch=True):
        ours.fit(X_ours, y_ours)
    for key, value in vars(ref).items():
        if isinstance(value, np.ndarray):
            _close(getattr(ours, key), value, X_ref.dtype, f"attribute {key}")
    for name in _METHODS:
        method = getattr(ref, name, None)
        if method is None:
            continue
        args_ref, args_ours = ((X_ref, y), (X_ours, y_ours)) if name == "score" else \
            ((X_ref,), (X_ours,))
        want = method(*args_ref)
        with config_context(array_api_dispatch=True):
            got = getattr(ours, name)(*args_ours)
        if name != "score":
            assert got.__array_namespace__() is mx, f"{name} left the mxarray namespace"
        _close(got, want, X_ref.dtype, name)
        if name == "transform" and hasattr(ref, "inverse_transform"):
            with config_context(array_api_dispatch=True):
                back = ours.inverse_transform(got)
            _close(back, ref.inverse_transform(want), X_ref.dtype, "inverse_transform")
    return "ok"


def _scipy_arguments(convert: Any) -> list[tuple[tuple, tuple]]:
    """Candidate (NumPy, mxarray) argument lists: one to three arrays, values in (0, 1)
    (valid for most special functions and every statistic)."""
    rng = np.random.default_rng(0)
    arrays = [convert(v) for v in (rng.uniform(0.05, 0.95, (3, 20)) for _ in range(3))]
    return [(tuple(a[0] for a in arrays[:n]), tuple(a[1] for a in arrays[:n]))
            for n in (1, 2, 3)]


def _check_scipy(func: Any, kind: str, reference: str) -> str:
    """``"ok"`` or ``"skip: <why>"``; raises where mxarray input disagrees with NumPy."""
    convert = _converter(kind, reference)
    errors = []
    for args_ref, args_ours in _scipy_arguments(convert):
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = func(*args_ref)
        except Exception as exc:
            errors.append(f"{len(args_ref)} array(s): {type(exc).__name__}: {exc}")
            continue
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = func(*args_ours)
        _close(got, want, args_ref[0].dtype, func.__name__)
        return "ok"
    return "skip: NumPy input fails: " + "; ".join(errors)


def _run_all() -> dict[str, str]:
    """Every case, as ``{"<id>|<kind>": "ok" | "skip: ..." | "fail: ..."}``."""
    results = {}
    cases = [("sklearn." + name, est, _check_estimator) for name, est in _estimators().items()]
    cases += [("scipy." + name, func, _check_scipy) for name, func in _scipy_functions().items()]
    for case_id, target, check in cases:
        for kind in KINDS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    results[f"{case_id}|{kind}"] = _either_precision(check, target, kind)
            except Exception as exc:
                results[f"{case_id}|{kind}"] = f"fail: {type(exc).__name__}: {exc}"[:2000]
    return results


# -- the tests ---------------------------------------------------------------------------

def _run_script(*args: str) -> Any:
    """This file run as a script with SciPy's array API support on; its JSON output."""
    env = dict(os.environ, SCIPY_ARRAY_API="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-4000:])
    return json.loads(proc.stdout.splitlines()[-1])


def _list_cases() -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (["sklearn." + n for n in _estimators()]
                + ["scipy." + n for n in sorted(_scipy_functions())])


@pytest.fixture(scope="module")
def results() -> dict[str, str]:
    return _run_script()


# Listed by a subprocess when pytest imports this file (never when it runs as the script).
CASES = [] if __name__ == "__main__" else _run_script("--list")


# MX cases a client refuses, and why (docs/array_api.md lists them).
_KIND_CHECK = ("checks that its input's dtype is a standard floating dtype, and an MX "
               "dtype belongs to no standard kind: pass mx.astype(q, mx.float32)")
MX_REFUSED = {
    "sklearn.GaussianMixture": ("allocates a work array with its input's dtype (an MX "
                                "array) and writes float64 values into it, which MX "
                                "assignment refuses"),
    "scipy.stats.describe": ("makes a 0-d array of its input's dtype, and an MX array "
                             "needs at least one dimension"),
    "scipy.stats.wilcoxon": _KIND_CHECK,
    "scipy.stats.false_discovery_control": _KIND_CHECK,
    "scipy.stats.quantile": _KIND_CHECK,
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", CASES)
def test_client_agrees_with_numpy(results, case, kind):
    outcome = results[f"{case}|{kind}"]
    if outcome.startswith("skip: "):
        pytest.skip(reason=outcome.removeprefix("skip: "))  # the NumPy call itself fails
    if kind.startswith("mx") and case in MX_REFUSED:
        assert outcome.startswith("fail: "), "works now: take it off MX_REFUSED"
        pytest.xfail(MX_REFUSED[case])
    assert outcome == "ok", outcome


def test_the_known_clients_are_covered():
    ids = set(CASES)
    for name in ("PCA", "MinMaxScaler", "Normalizer", "Ridge", "LogisticRegression",
                 "StandardScaler", "LinearDiscriminantAnalysis"):
        assert f"sklearn.{name}" in ids
    assert {"scipy.special.erf", "scipy.stats.zscore"} <= ids


if __name__ == "__main__":
    print(json.dumps(_list_cases() if sys.argv[1:] == ["--list"] else _run_all()))
