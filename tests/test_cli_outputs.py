"""Every file a command writes is named on its stdout (issue 13: "every file written is named on
stdout"), including cache entries and figures, and in --json mode inside the JSON or on stderr."""

import json
import os

from mpisim.cli import main


def files(folder):
    return {str(p) for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
            and not p.name.endswith(".lock")}


def test_every_file_written_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MPISIM_CACHE_DIR", str(tmp_path / "cache"))
    d = tmp_path
    steps = [
        ["simulate", "--scanner", "bruker-2d", "--phantom", "shapes", "--noise", "realistic", "--frames", "2",
         "--background-frames", "2", "--out", d / "meas.mdf"],
        ["sysmat", "--scanner", "bruker-2d", "--grid", "9x9x1", "--out", d / "sm.mdf"],
        ["reco", d / "meas.mdf", "--sm", d / "sm.mdf", "--out", d / "reco.mdf", "--png", d / "reco.png"],
        ["convert", d / "meas.mdf", d / "spectra.mdf"],
        ["quantify", d / "reco.mdf", "--roi", "all=sphere:0,0,0,30", "--png", d / "cells.png"],
        ["plot", d / "sm.mdf", "--out", d / "sm.png"],
        ["plot", d / "meas.mdf"],
    ]
    seen = files(d)
    for argv in steps:
        assert main([str(a) for a in argv]) == 0, argv
        out = capsys.readouterr().out
        new = files(d) - seen
        assert new, argv
        for f in new:
            assert f in out, (argv[0], f, out)
        seen |= new


def test_json_mode_names_files_without_breaking_the_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MPISIM_CACHE_DIR", str(tmp_path / "cache"))
    d = tmp_path
    assert main(["simulate", "--scanner", "bruker-1d", "--frames", "1", "--background-frames", "2", "--noise",
                 "realistic", "--out", str(d / "m.mdf")]) == 0
    assert main(["sysmat", "--scanner", "bruker-1d", "--grid", "9x1x1", "--out", str(d / "s.mdf")]) == 0
    capsys.readouterr()
    assert main(["reco", str(d / "m.mdf"), "--sm", str(d / "s.mdf"), "--out", str(d / "r.mdf"), "--png",
                 str(d / "r.png"), "--snr-threshold", "0", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["out"] == str(d / "r.mdf") and res["png"] == str(d / "r.png")
    assert main(["quantify", str(d / "r.mdf"), "--roi", "a=sphere:0,0,0,30", "--png", str(d / "q.png"), "--json"]) == 0
    cap = capsys.readouterr()
    json.loads(cap.out)                                   # stdout stays one JSON document
    assert str(d / "q.png") in cap.out + cap.err and os.path.exists(d / "q.png")
