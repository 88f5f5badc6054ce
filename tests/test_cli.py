import subprocess
import sys

import pytest

from mpisim.cli import main


def run(*args):
    return main([str(a) for a in args])


def test_simulate_and_info(tmp_path, capsys):
    out = tmp_path / "m.mdf"
    assert run("simulate", "--scanner", "bruker-1d", "--phantom", "point", "--frames", 2, "--out", out) == 0
    assert out.exists()
    assert run("info", out) == 0
    assert "bruker-1d" in capsys.readouterr().out


@pytest.mark.parametrize("args,needle", [
    (["--scanner", "bruker-7d"], "unknown scanner preset"),
    (["--phantom", "teapot"], "unknown phantom"),
    (["--concentration=-0.1mol/L"], "negative concentration"),
    (["--concentration", "nanmol/L"], "NaN"),
    (["--concentration", "50"], "needs a unit"),
    (["--concentration", "50kHz"], "with its unit"),
    (["--tracer-diameter", "abc"], "--tracer-diameter"),
    (["--noise", "loud"], "--noise"),
    (["--frames", "0"], "frames"),
])
def test_simulate_bad_input(tmp_path, capsys, args, needle):
    out = tmp_path / "m.mdf"
    assert run("simulate", *args, "--out", out) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_scanner_files(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    import mpisim

    good = mpisim.get_scanner("bruker-1d").to_toml()
    bad.write_text(good.replace("[-1.0, 0.0, 0.0]", "[1.0, 0.0, 0.0]"))
    assert run("simulate", "--scanner", bad, "--out", tmp_path / "o.mdf") == 2
    assert "trace 0" in capsys.readouterr().err
    bad.write_text("this is = = not toml")
    assert run("simulate", "--scanner", bad, "--out", tmp_path / "o.mdf") == 2
    assert "malformed TOML" in capsys.readouterr().err
    assert not (tmp_path / "o.mdf").exists()


def test_refuses_existing_output(tmp_path, capsys):
    out = tmp_path / "m.mdf"
    out.write_bytes(b"keep me")
    assert run("simulate", "--scanner", "bruker-1d", "--out", out) == 2
    assert out.read_bytes() == b"keep me"
    assert run("simulate", "--scanner", "bruker-1d", "--out", out, "--overwrite") == 0


def test_info_errors(tmp_path, capsys):
    assert run("info", tmp_path / "missing.mdf") == 2
    assert "file not found" in capsys.readouterr().err
    junk = tmp_path / "junk.mdf"
    junk.write_bytes(b"not hdf5 at all" * 10)
    assert run("info", junk) == 2
    assert "not an HDF5 file" in capsys.readouterr().err


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "mpisim", "simulate", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--noise" in r.stdout


def test_import_is_light():
    code = "import sys, mpisim; print(any(m.startswith(('cupy','numba','h5py','matplotlib','scipy')) for m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False"
