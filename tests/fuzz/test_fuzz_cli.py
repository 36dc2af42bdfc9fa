"""Fuzzing the ``mxarray`` command line: random and bad arguments, corrupted files.

The contract: exit status 0 on success, 2 for a usage error (argparse prints usage),
1 when the command fails on its input, with exactly one line on stderr
(``mxarray COMMAND: error: ...``) and no traceback; the input file is never changed
and a failed run leaves no output file behind.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.hardening import fuzz_settings
from hypothesis import event, given
from hypothesis import strategies as st

import mxarray
from mxarray.cli import main
from mxarray.io import save

pytest.importorskip("safetensors", reason="the io extra (safetensors) is not installed")
pytest.importorskip("ml_dtypes", reason="the io extra (ml_dtypes) is not installed")

X = np.linspace(-3, 3, 4 * 40, dtype=np.float32).reshape(4, 40)


def _inputs(d: Path) -> dict[str, bytes]:
    """Input files of every kind (valid and corrupted) in ``d``; their bytes by name."""
    save(d / "mx.safetensors", {"w": mxarray.quantize(X, "mxfp4_e2m1"), "b": X[0]})
    save(d / "mx.npz", {"w": mxarray.quantize(X, "mx6", axis=0), "n": np.int32(4)})
    np.save(d / "x.npy", X)
    np.save(d / "ints.npy", np.arange(64))
    good = (d / "mx.npz").read_bytes()
    (d / "cut.npz").write_bytes(good[: len(good) // 2])
    (d / "junk.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    (d / "text.npy").write_bytes(b'{"not": "an array"}\n' * 4)
    (d / "empty.npz").write_bytes(b"")
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


_FILES = ["mx.safetensors", "mx.npz", "x.npy", "ints.npy", "cut.npz", "junk.safetensors",
          "text.npy", "empty.npz", "missing.npz", "x.txt", ".", "dir.npz"]
_OUTS = ["out.npz", "out.safetensors", "out.pt", "mx.npz", "x.npy", ".", "no/such/dir/o.npz"]
_TOKENS = ["--axis", "--rounding", "--scale-mode", "--seed", "--backend", "--format", "-f",
           "-o", "--input", "--data", "--json", "--help", "-1", "0", "1", "2", "-2", "40",
           str(2**64), "9" * 30, "x", "", "floor", "ceil", "even", "stochastic", "nearest",
           "mxint8", "mxfp4_e2m1", "nvfp4", "mx9", "numpy", "cupy", "nope", "gaussian",
           "\x1b[2J"]  # undecodable bytes in arguments: test_as_a_process


def _argv(draw) -> list[str]:
    command = draw(st.sampled_from(["report", "quantize", "quantize", "quantize", "inspect",
                                    "inspect", "bogus", "--version"]))
    argv = [command]
    if command == "quantize":
        argv += [draw(st.sampled_from(_FILES)), "-f",
                 draw(st.sampled_from(["mxint8", "mxfp8_e4m3", "nvfp4", "mx4", "mxfp5"])),
                 "-o", draw(st.sampled_from(_OUTS))]
    elif command == "inspect":
        argv += [draw(st.sampled_from(_FILES))]
    elif command == "report":  # small sizes and few repeats: a huge --size is slow, not wrong
        argv += ["--size", draw(st.sampled_from(["64", "1", "0", "-5", "x"])),
                 "--repeats", "1", "--format", draw(st.sampled_from(["mxint8", "mx6"]))]
    return argv + draw(st.just([]) | st.lists(st.sampled_from(_TOKENS), max_size=3))


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors, --help, --version
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _check_outcome(code: int, err: str, argv: list[str]) -> None:
    assert code in (0, 1, 2), (argv, code)
    assert "Traceback" not in err, (argv, err)
    if code == 1:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"mxarray {argv[0]}: error: "), (argv, err)
        assert len(lines[0]) > len(f"mxarray {argv[0]}: error: ") + 3
        assert all(c.isprintable() for c in lines[0]), (argv, err)
    if code == 2:
        assert "usage:" in err, (argv, err)


@given(data=st.data())
@fuzz_settings(200)
def test_random_command_lines(tmp_path_factory, capsys, data):
    d = tmp_path_factory.mktemp("cli")
    (d / "dir.npz").mkdir()
    before = _inputs(d)
    argv = _argv(data.draw)
    old = os.getcwd()
    os.chdir(d)
    try:
        code, _, err = _run(argv, capsys)
    finally:
        os.chdir(old)
    _check_outcome(code, err, argv)
    event(f"{argv[0]} exit {code}")
    after = {p.name for p in d.iterdir()}
    written = {b for a, b in itertools.pairwise(argv) if a in ("-o", "--json")} if code == 0 \
        else set()
    for name, content in before.items():  # unchanged, unless a successful run's output
        if name not in written:
            assert (d / name).read_bytes() == content, (argv, name)
    new = after - set(before) - {"dir.npz"}
    if code != 0:
        assert not new, (argv, new)  # no partial output
    assert not any(n.endswith(".partial") for n in after), (argv, after)


@pytest.mark.parametrize("name", ["cut.npz", "junk.safetensors", "empty.npz", "text.npy",
                                  "missing.npz", "dir.npz"])
@pytest.mark.parametrize("command", ["quantize", "inspect", "report"])
def test_bad_input_files_fail_with_status_1_and_one_line(tmp_path, capsys, monkeypatch, name,
                                                         command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.npz").mkdir()
    _inputs(tmp_path)
    argv = {"quantize": ["quantize", name, "-f", "mxint8", "-o", "out.npz"],
            "inspect": ["inspect", name],
            "report": ["report", "--input", name.replace(".npz", ".npy")
                       .replace(".safetensors", ".npy"), "--repeats", "1"]}[command]
    code, _, err = _run(argv, capsys)
    assert code == 1, (argv, err)
    _check_outcome(code, err, argv)
    assert not (tmp_path / "out.npz").exists()


def test_report_does_not_call_a_broken_npy_file_a_pickle(tmp_path, capsys):
    # np.load fell back to unpickling a file without the .npy magic, and the message said
    # "This file contains pickled (object) data".
    (tmp_path / "text.npy").write_text('{"not": "an array"}\n')
    code, _, err = _run(["report", "--input", str(tmp_path / "text.npy")], capsys)
    assert code == 1 and "not a valid file" in err and "pickle" not in err


def test_report_refuses_to_write_its_json_over_its_input(tmp_path, capsys):
    # --json naming the --input file replaced the input with the JSON results.
    np.save(tmp_path / "x.npy", X)
    before = (tmp_path / "x.npy").read_bytes()
    os.symlink(tmp_path / "x.npy", tmp_path / "link.json")
    for out in ("x.npy", "link.json"):
        code, _, err = _run(["report", "--input", str(tmp_path / "x.npy"), "--json",
                             str(tmp_path / out), "--repeats", "1", "--format", "mxint8"],
                            capsys)
        assert code == 1 and "is the input file" in err
    assert (tmp_path / "x.npy").read_bytes() == before


def test_a_failure_to_allocate_is_one_line_not_a_traceback(capsys):
    # make_dataset's MemoryError (NumPy refuses 256 TiB at once) escaped with a traceback.
    code, _, err = _run(["report", "--size", str(2**45), "--format", "mxint8"], capsys)
    assert code == 1 and "Unable to allocate" in err and len(err.splitlines()) == 1


def test_inspect_escapes_control_characters_in_names(tmp_path, capsys):
    # Tensor names and metadata from a file were printed raw: "\x1b[2J" cleared the
    # screen and "\n" forged table rows.
    from safetensors.numpy import save_file

    save_file({"a\x1b[2J\nfake  row": np.ones(2, np.float32)}, str(tmp_path / "t.safetensors"),
              metadata={"note\x07": "x\ry"})
    code, out, _ = _run(["inspect", str(tmp_path / "t.safetensors")], capsys)
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "a\\x1b[2J\\nfake  row" in out and "note\\x07: x\\ry" in out
    assert len(out.splitlines()) == 5  # title, metadata, header, rule, one tensor


def test_quantize_names_with_control_characters_are_escaped(tmp_path, capsys):
    np.savez(tmp_path / "in.npz", **{"w\x1b]0;t\x07": X})
    code, out, _ = _run(["quantize", str(tmp_path / "in.npz"), "-f", "mxint8", "-o",
                         str(tmp_path / "out.npz")], capsys)
    assert code == 0 and "\x1b" not in out and "w\\x1b]0;t\\x07" in out
    assert list(mxarray.io.load(tmp_path / "out.npz")) == ["w\x1b]0;t\x07"]


@pytest.mark.parametrize("seed", range(3))
def test_quantize_over_mutated_inputs(tmp_path, capsys, seed):
    rng = random.Random(seed)
    save(tmp_path / "in.safetensors", {"w": mxarray.quantize(X, "mxint8"), "d": X})
    good = (tmp_path / "in.safetensors").read_bytes()
    for _ in range(30):
        data = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        (tmp_path / "in.safetensors").write_bytes(bytes(data))
        code, _, err = _run(["quantize", str(tmp_path / "in.safetensors"), "-f", "mxfp4_e2m1",
                             "-o", str(tmp_path / "out.npz")], capsys)
        _check_outcome(code, err, ["quantize"])
        assert code in (0, 1)
        assert (tmp_path / "out.npz").exists() == (code == 0)
        assert (tmp_path / "in.safetensors").read_bytes() == bytes(data)
        (tmp_path / "out.npz").unlink(missing_ok=True)


def _subprocess(args: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mxarray", *args], capture_output=True,
                          cwd=cwd, timeout=120, check=False)


def test_as_a_process(tmp_path):
    _inputs(tmp_path)
    done = _subprocess(["inspect", "cut.npz"], tmp_path)
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    assert done.stderr.count(b"\n") == 1 and done.stderr.startswith(b"mxarray inspect: error:")
    done = _subprocess(["quantize", "x.npy", "-f", "mxfp9", "-o", "o.npz"], tmp_path)
    assert done.returncode == 2 and b"usage:" in done.stderr
    done = _subprocess(["quantize", b"x.npy", "-f", "mxint8", "-o", b"\xff.npz"], tmp_path)
    assert done.returncode == 0, done.stderr
    done = _subprocess(["inspect", b"\xff.npz"], tmp_path)
    assert done.returncode == 0 and b"mx" in done.stdout, done.stderr
    done = _subprocess(["report", "--data", b"\xfe"], tmp_path)  # argparse's error message
    assert done.returncode == 2 and b"Traceback" not in done.stderr
    assert json.dumps(sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name)) == "[]"
