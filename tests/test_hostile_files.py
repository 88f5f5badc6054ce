"""Untrusted paths (issue 22, the first part): an input that is not a regular file — a FIFO, a device, a
folder — is refused with one line before anything reads it, and no command writes over one of its inputs,
with or without --overwrite, by the same name or through a hard link. Each case: exit 2, one line on
stderr, nothing written, the input unchanged."""

import hashlib
import os

import pytest

from mpisim.cli import main
from test_hostile_h5 import CAP, LIMIT_S, run_capped, write_base_files


def _digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_base_files(tmp_path_factory.mktemp("hostile"), "25x25x1")


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_inputs_that_are_not_regular_files_are_refused(files, tmp_path, kind):
    if kind == "fifo":
        bad = tmp_path / "pipe.mdf"
        os.mkfifo(bad)
        what = "a FIFO"
    elif kind == "device":
        bad, what = "/dev/zero", "a device"
    else:
        bad = tmp_path / "folder.mdf"
        bad.mkdir()
        what = "a folder"
    before = sorted(x.name for x in tmp_path.iterdir())
    m, sm, r = (str(files / n) for n in ("m.mdf", "s.mdf", "r.mdf"))
    for args in (["info", str(bad)], ["design", str(bad)], ["simulate", "--scanner", str(bad), "--out", "x.mdf"],
                 ["simulate", "--transfer-function", str(bad), "--out", "x.mdf"], ["plot", str(bad), "--out", "x.png"],
                 ["reco", str(bad), "--sm", sm, "--out", "x.mdf"], ["reco", m, "--sm", str(bad), "--out", "x.mdf"],
                 ["reco", m, "--sm", sm, "--transfer-function", str(bad), "--out", "x.mdf"],
                 ["quantify", str(bad)], ["quantify", r, "--measurement", str(bad), "--sm", sm],
                 ["quantify", r, "--roi-mask", str(bad), "--estimator", "roi-sum"],
                 ["convert", str(bad), "x.mdf"], ["sweep", str(bad), "--vary", "selection.gradient=1,2", "--out", "x"]):
        rc, err, took, peak = run_capped(args, tmp_path)
        assert rc == 2, (args, err)
        assert f"is {what}" in err and len(err.strip().splitlines()) == 1, (args, err)
        assert took < LIMIT_S and peak < CAP, (args, took, peak)
    assert sorted(x.name for x in tmp_path.iterdir()) == before                 # nothing written


def test_no_command_writes_over_its_input(files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("m.mdf", "s.mdf"):
        (tmp_path / name).write_bytes((files / name).read_bytes())
    os.link(tmp_path / "m.mdf", tmp_path / "m-link.mdf")
    digests = {n: _digest(tmp_path / n) for n in ("m.mdf", "s.mdf")}
    for args in (["convert", "m.mdf", "m.mdf", "--overwrite"],
                 ["convert", "m.mdf", "m-link.mdf", "--overwrite"],               # the same file, by a hard link
                 ["reco", "m.mdf", "--sm", "s.mdf", "--out", "s.mdf", "--overwrite"],
                 ["reco", "m.mdf", "--sm", "s.mdf", "--out", "m-link.mdf", "--overwrite"]):
        capsys.readouterr()
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert "is an input of this command" in err and len(err.strip().splitlines()) == 1, (args, err)
    assert {n: _digest(tmp_path / n) for n in digests} == digests                 # inputs unchanged
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m-link.mdf", "m.mdf", "s.mdf"]
    assert main(["convert", "m.mdf", "c.mdf"]) == 0                               # another name still works


def test_reco_frames_counts_foreground_frames(tmp_path, monkeypatch):
    """`reco --frames 0` on a measurement whose first stored frames are background frames reconstructs the first
    *foreground* frame (the help's meaning): the same image as frame 0 of the reconstruction of every foreground
    frame, holding the phantom's iron (a background frame holds none); an index past the foreground frames is
    refused in one line that says what --frames counts."""
    import numpy as np

    import mpisim

    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "--scanner", "bruker-2d", "--phantom", "shapes", "--background-frames", "3", "--frames",
                 "2", "--out", "m.mdf"]) == 0
    assert main(["sysmat", "--scanner", "bruker-2d", "--grid", "25x25x1", "--out", "s.mdf"]) == 0
    fixed = ["--lambda", "0.01", "--iterations", "5"]
    assert main(["reco", "m.mdf", "--sm", "s.mdf", "--out", "all.mdf", *fixed]) == 0
    assert main(["reco", "m.mdf", "--sm", "s.mdf", "--out", "first.mdf", "--frames", "0", *fixed]) == 0
    every, first = mpisim.read_reconstruction("all.mdf"), mpisim.read_reconstruction("first.mdf")
    assert every.num_frames == 2 and first.num_frames == 1
    assert np.allclose(first.image[0], every.image[0], rtol=1e-5, atol=1e-9 * np.abs(every.image[0]).max())
    assert first.image[0].sum() > 0.5 * np.abs(every.image[0]).sum()          # iron, not a background frame
    assert main(["reco", "m.mdf", "--sm", "s.mdf", "--out", "x.mdf", "--frames", "2", *fixed]) == 2
    assert not (tmp_path / "x.mdf").exists()


def test_long_output_names_and_frame_out_of_range(files, tmp_path, capsys, monkeypatch):
    """An output name the file system holds (254 bytes) is written (its temporary name is cut to fit); one it
    cannot hold is refused in one line; `plot --frame` past the reconstruction's frames is one line, not an
    IndexError."""
    monkeypatch.chdir(tmp_path)
    ok = "a" * 250 + ".mdf"
    assert main(["convert", str(files / "m.mdf"), ok]) == 0 and (tmp_path / ok).is_file()
    capsys.readouterr()
    for args, needle in ((["convert", str(files / "m.mdf"), "b" * 300 + ".mdf"], "file name too long"),
                         (["plot", str(files / "r.mdf"), "--frame", "1", "--out", "p.png"], "out of range")):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
    assert sorted(x.name for x in tmp_path.iterdir()) == [ok]                    # no temporary file left


def test_strings_from_a_file_do_not_drive_the_terminal(files, tmp_path, capsys):
    """A crafted file whose metadata strings hold terminal escape sequences (set the title, clear the screen):
    `info` prints them as \\xNN, never as the control characters themselves."""
    import h5py

    bad = tmp_path / "crafted.mdf"
    bad.write_bytes((files / "m.mdf").read_bytes())
    evil = "\x1b]0;pwned\x07\x1b[2J"
    with h5py.File(bad, "r+") as h:
        for key in ("study/name", "experiment/name", "scanner/name"):
            if key in h:
                del h[key]
                h[key] = evil
    capsys.readouterr()
    assert main(["info", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07" in out


def test_read_only_cache_serves_hits(tmp_path, capsys, monkeypatch):
    """A cache folder that cannot be written (a shared, read-only cache) still serves its entries, with a
    one-line note; a miss there is a one-line error. (Root ignores permissions, so the folder's
    writability is what the test sets.)"""
    from mpisim import cache

    monkeypatch.chdir(tmp_path)
    args = ["sysmat", "--scanner", "bruker-2d", "--grid", "8x8x1", "--cache-dir", str(tmp_path / "c")]
    assert main([*args, "--out", "a.mdf"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(cache, "writable", lambda d: False)
    assert main([*args, "--out", "b.mdf"]) == 0
    out = capsys.readouterr()
    assert "the cache folder is read-only: nothing can be added to it" in out.out + out.err
    assert (tmp_path / "b.mdf").exists() and os.path.samefile(tmp_path / "b.mdf", next((tmp_path / "c").glob("sm-*.mdf")))
    assert main(["sysmat", "--scanner", "bruker-2d", "--grid", "9x9x1", "--cache-dir", str(tmp_path / "c"),
                 "--out", "c.mdf"]) == 2
    err = capsys.readouterr().err
    assert "is read-only and holds no entry" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "c.mdf").exists()


@pytest.mark.parametrize("nesting", ["array", "table", "inline"])
def test_deeply_nested_toml_is_refused_in_one_line(tmp_path, nesting):
    """A scanner TOML nested thousands of levels deep (a RecursionError in the parser before) is refused by
    every command that reads one, under the memory cap and time limit."""
    text = {"array": "name = 'deep'\nx = " + "[" * 5000 + "]" * 5000,
            "table": "[" + ".".join(["a"] * 3000) + "]\ny = 1",
            "inline": "x = " + "{a=" * 3000 + "1" + "}" * 3000}[nesting]
    (tmp_path / "deep.toml").write_text(text + "\n")
    for args in (["design", "deep.toml"], ["simulate", "--scanner", "deep.toml", "--out", "x.mdf"],
                 ["sysmat", "--scanner", "deep.toml", "--grid", "4x4x1", "--out", "x.mdf"],
                 ["sweep", "deep.toml", "--vary", "selection.gradient=1,2", "--out", "x"]):
        rc, err, took, peak = run_capped(args, tmp_path)
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "nested deeper" in err, (args, err)
        assert took < LIMIT_S and peak < CAP
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.toml"]


def test_embedded_scanner_disagreeing_with_acquisition_is_refused_first(files, tmp_path):
    """A file whose /_mpisim/scanner says one sequence and /acquisition another contradicts itself: refused
    in one line before any work (it failed with a ValueError after the whole reconstruction before)."""
    import h5py

    bad = tmp_path / "m.mdf"
    bad.write_bytes((files / "m.mdf").read_bytes())
    with h5py.File(bad, "r+") as h:
        text = h["_mpisim/scanner"][()].decode()
        assert "divider = 96" in text
        del h["_mpisim/scanner"]
        h["_mpisim/scanner"] = text.replace("divider = 96", "divider = 97")
    for args in (["reco", "m.mdf", "--sm", str(files / "s.mdf"), "--out", "x.mdf"], ["plot", "m.mdf", "--out", "x.png"],
                 ["convert", "m.mdf", "x.mdf"]):
        rc, err, took, peak = run_capped(args, tmp_path)
        assert rc == 2 and len(err.strip().splitlines()) == 1, (args, err)
        assert "/_mpisim/scanner disagrees with /acquisition on the drive dividers" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mdf"]


def test_a_cache_entry_is_not_deleted_for_want_of_memory(tmp_path, capsys, monkeypatch):
    """Opening a compressed cache entry may be refused for want of memory (its chunks' worst inflation):
    that is said in one line and the entry stays; it is not damage."""
    from mpisim import cache, resources

    monkeypatch.chdir(tmp_path)
    args = ["sysmat", "--scanner", "bruker-2d", "--grid", "8x8x1", "--compression", "gzip", "--cache-dir", str(tmp_path / "c")]
    assert main([*args, "--out", "a.mdf"]) == 0
    entries = sorted((tmp_path / "c").glob("sm-*.mdf"))
    assert len(entries) == 1
    capsys.readouterr()
    monkeypatch.setattr(resources, "available_memory", lambda: 1 << 20)        # 1 MiB: far too little
    assert main([*args, "--out", "b.mdf"]) == 2
    err = capsys.readouterr().err
    assert "inflated at worst 1032-fold" in err and len(err.strip().splitlines()) == 1, err
    assert sorted((tmp_path / "c").glob("sm-*.mdf")) == entries and not (tmp_path / "b.mdf").exists()
    assert "not enough memory" in cache.list_entries(tmp_path / "c")[0][2]
