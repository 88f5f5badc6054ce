"""Bad input never crashes: one-line errors, exit status 2, no partial output, inputs untouched."""

import os
import shutil

import h5py
import numpy as np
import pytest

from mpisim.cli import main
from mpisim.errors import MPISimError

import mdf_factory as F


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("valid")
    F.write_mpifiles_sm(d / "sm.mdf", n=7, n_bg=3)
    F.write_mpifiles_meas(d / "meas.mdf", n=7, frames=2, n_bg=2)
    assert main(["simulate", "--scanner", "bruker-1d", "--frames", "2", "--background-frames", "2",
                 "--noise", "realistic", "--out", str(d / "sim1d.mdf")]) == 0
    assert main(["sysmat", "--scanner", "bruker-1d", "--grid", "9x1x1", "--background-frames", "3", "--no-cache",
                 "--out", str(d / "sm1d.mdf")]) == 0
    assert main(["reco", str(d / "sim1d.mdf"), "--sm", str(d / "sm1d.mdf"), "--out", str(d / "reco1d.mdf"),
                 "--snr-threshold", "0"]) == 0
    return d


def commands(f, out):
    d = f
    return {
        "info": ["info", "{in}"],
        "reco-meas": ["reco", "{in}", "--sm", str(d / "sm.mdf"), "--out", str(out), "--snr-threshold", "0"],
        "reco-sm": ["reco", str(d / "meas.mdf"), "--sm", "{in}", "--out", str(out), "--snr-threshold", "0"],
        "convert": ["convert", "{in}", str(out)],
    }


def run_cli(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


def damaged_variants(src, tmp):
    """(label, path) of broken copies of a valid file."""
    out = []
    p = tmp / "missing.mdf"
    out.append(("missing file", p))
    p = tmp / "nothdf5.mdf"
    p.write_bytes(b"\x00\x01 definitely not HDF5 " * 50)
    out.append(("not HDF5", p))
    raw = src.read_bytes()
    p = tmp / "truncated.mdf"
    p.write_bytes(raw[: len(raw) // 3])
    out.append(("truncated", p))
    for label, fn in (
        ("no /acquisition", lambda h: h.__delitem__("acquisition")),
        ("no /measurement", lambda h: h.__delitem__("measurement")),
        ("data is a string", lambda h: (h["measurement"].__delitem__("data"), h["measurement"].create_dataset("data", data="x"))),
        ("data 2-D", lambda h: _replace(h, "measurement/data", np.zeros((3, 4)))),
        ("numFrames inconsistent", lambda h: _replace(h, "acquisition/numFrames", np.int64(999))),
        ("bandwidth negative", lambda h: _replace(h, "acquisition/receiver/bandwidth", -1.0)),
        ("bandwidth string", lambda h: _replace(h, "acquisition/receiver/bandwidth", "wide")),
        ("samples mismatch", lambda h: _replace(h, "acquisition/receiver/numSamplingPoints", np.int64(77))),
        ("channels mismatch", lambda h: _replace(h, "acquisition/receiver/numChannels", np.int64(5))),
        ("divider zero", lambda h: _replace(h, "acquisition/drivefield/divider", np.zeros((2, 1), np.int64))),
        ("isBackgroundFrame wrong length", lambda h: _replace(h, "measurement/isBackgroundFrame", np.zeros(2, np.int8))),
        ("NaN data", lambda h: _nan(h)),
    ):
        p = tmp / f"{label.replace(' ', '_').replace('/', '')}.mdf"
        shutil.copy(src, p)
        with h5py.File(p, "a") as h:
            fn(h)
        out.append((label, p))
    return out


def _replace(h, name, value):
    if name in h:
        del h[name]
    h[name] = value


def _nan(h):
    d = h["measurement/data"][()].astype(np.float64) if h["measurement/data"].dtype.kind in "iuf" else h["measurement/data"][()]
    d.flat[5] = np.nan
    _replace(h, "measurement/data", d)


@pytest.mark.parametrize("which", ["meas.mdf", "sm.mdf"])
def test_every_command_on_damaged_inputs(files, tmp_path, capsys, which):
    src = files / which
    variants = damaged_variants(src, tmp_path)
    out = tmp_path / "out.mdf"
    cmds = commands(files, out)
    names = ["info", "reco-meas", "convert"] if which == "meas.mdf" else ["info", "reco-sm"]
    checked = 0
    for label, path in variants:
        before = path.read_bytes() if path.exists() else None
        for name in names:
            args = [a.replace("{in}", str(path)) for a in cmds[name]]
            code, err = run_cli(args, capsys)
            if name == "info" and code == 0:
                continue   # info may summarise what is readable (e.g. inconsistent numFrames)
            assert code == 2, (label, name, err)
            assert len(err.splitlines()) == 1 and str(path.name) in err, (label, name, err)
            assert not out.exists(), (label, name)
            checked += 1
        if before is not None:
            assert path.read_bytes() == before       # never modified
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert checked >= 20


def test_existing_output_and_unwritable_folder(files, tmp_path, capsys):
    out = tmp_path / "o.mdf"
    out.write_text("precious")
    code, err = run_cli(["convert", str(files / "meas.mdf"), str(out)], capsys)
    assert code == 2 and "exists" in err and out.read_text() == "precious"
    code, err = run_cli(["convert", str(files / "meas.mdf"), str(out), "--overwrite"], capsys)
    assert code == 0
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for args in (["convert", str(files / "meas.mdf"), str(blocker / "o.mdf")],
                 ["simulate", "--scanner", "bruker-1d", "--out", str(blocker / "o.mdf")],
                 ["reco", str(files / "meas.mdf"), "--sm", str(files / "sm.mdf"), "--out", str(tmp_path / "no" / "o.mdf")]):
        code, err = run_cli(args, capsys)
        assert code == 2 and "does not exist" in err


def test_ctrl_c_mid_write_leaves_nothing(files, tmp_path, capsys, monkeypatch):
    import mpisim.io.mdf_write as mdf_write

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(mdf_write, "write_flags", boom)
    out = tmp_path / "o.mdf"
    assert main(["simulate", "--scanner", "bruker-1d", "--out", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_disk_full_is_a_clean_error(tmp_path, monkeypatch):
    from mpisim.io.atomic import atomic_path

    with pytest.raises(MPISimError, match="disk full"):
        with atomic_path(tmp_path / "o.mdf") as tmp:
            open(tmp, "wb").write(b"partial")
            raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


MUTATIONS = ("flip", "drop", "reshape", "retype", "truncate")


def mutate(src, dst, rng):
    kind = MUTATIONS[rng.integers(len(MUTATIONS))]
    raw = bytearray(src.read_bytes())
    if kind == "flip":
        for _ in range(int(rng.integers(1, 40))):
            raw[int(rng.integers(len(raw)))] ^= int(rng.integers(1, 256))
        dst.write_bytes(raw)
        return kind
    if kind == "truncate":
        dst.write_bytes(raw[: int(rng.integers(1, len(raw)))])
        return kind
    dst.write_bytes(raw)
    with h5py.File(dst, "a") as h:
        names = []
        h.visit(lambda n: names.append(n) if isinstance(h[n], h5py.Dataset) else None)
        name = names[int(rng.integers(len(names)))]
        if kind == "drop":
            del h[name]
        else:
            old = h[name][()]
            arr = np.asarray(old)
            del h[name]
            if kind == "reshape":
                shape = tuple(int(x) for x in rng.integers(1, 5, size=int(rng.integers(0, 4))))
                vals = np.resize(arr.ravel() if arr.size else np.zeros(1), int(np.prod(shape)) if shape else 1)
                h[name] = vals.reshape(shape) if shape else vals[0]
            else:
                choices = [np.float64(rng.standard_normal()), np.int8(-1), "garbage", np.array([np.nan, np.inf]),
                           np.zeros((2, 2), np.complex64), np.int64(-5)]
                h[name] = choices[int(rng.integers(len(choices)))]
    return kind


def fuzz(files, tmp, count, seed=0):
    """Seeded mutation loop over ``count`` mutated inputs (the same ones on every machine: no clock is
    involved); returns (inputs tried, unhandled exceptions as (file, kind, repr))."""
    from mpisim.io.mdf import read_header, read_mdf
    from mpisim.io.reco_mdf import read_reconstruction
    from mpisim.reco import reconstruct
    from mpisim.io.frame_file import open_measurement
    from mpisim.io.sm_file import load_system_matrix

    rng = np.random.default_rng(seed)
    sources = [files / n for n in ("meas.mdf", "sm.mdf", "sim1d.mdf", "sm1d.mdf", "reco1d.mdf")]
    good_sm = load_system_matrix(files / "sm1d.mdf")
    good_meas = open_measurement(files / "sim1d.mdf")
    tried, bad = 0, []
    attempts = 0
    while tried < count and attempts < 20 * count:
        attempts += 1
        src = sources[tried % len(sources)]
        dst = tmp / f"fuzz{tried % 7}.mdf"
        try:
            kind = mutate(src, dst, rng)
        except (OSError, KeyError, ValueError, TypeError):
            continue   # the mutation itself could not be written (h5py refused); not an input
        tried += 1
        for fn in (read_header, read_mdf, load_system_matrix, read_reconstruction,
                   lambda p: reconstruct(open_measurement(p), good_sm, snr_threshold=0),
                   lambda p: reconstruct(good_meas, load_system_matrix(p), snr_threshold=0)):
            try:
                fn(dst)
            except MPISimError as e:
                assert "\n" not in str(e)
            except Exception as e:  # anything else is a bug
                import traceback
                bad.append((src.name, kind, f"{type(e).__name__}: {e}"[:200], traceback.format_exc()[-600:]))
    return tried, bad


def test_fuzz_no_unhandled_exception(files, tmp_path):
    count = int(os.environ.get("MPISIM_FUZZ_INPUTS", "50"))      # a fixed, seeded set of inputs
    tried, bad = fuzz(files, tmp_path, count)
    print(f"\nfuzz: {tried} mutated inputs, {len(bad)} unhandled exceptions")
    assert tried == count
    assert bad == []


def test_info_flags_problems_and_refuses_non_mdf(files, tmp_path, capsys):
    p = tmp_path / "nf.mdf"
    shutil.copy(files / "meas.mdf", p)
    with h5py.File(p, "a") as h:
        _replace(h, "acquisition/numFrames", np.int64(999))
    assert main(["info", str(p)]) == 0
    assert "PROBLEM:     /acquisition/numFrames is 999" in capsys.readouterr().out
    q = tmp_path / "plain.h5"
    with h5py.File(q, "w") as h:
        h["x"] = np.arange(3)
    assert main(["info", str(q)]) == 2
    err = capsys.readouterr().err
    assert "missing mandatory group(s) /study, /experiment, /scanner, /acquisition" in err
