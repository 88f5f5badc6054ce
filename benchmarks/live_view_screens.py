"""The live view at three moments of a guided injection: the screenshots in the how-to "Guide an injection".

The preset injection on bruker-3d (``mpisim simulate --phantom injection``, 30 s, realistic noise, 10 background
frames) is played back at the sequence's pace (``mpisim simulate --replay … --pace realtime``) while ``mpisim live
… --view PORT`` follows it with the target, needle-track and ventricle ROIs; the page is opened in headless Chromium
(:class:`mpisim.live_view.Browser`) and captured before the reflux (10 s), after its onset (17 s) and after the
leak's (27 s), each at the stream's time the page shows.

    python benchmarks/live_view_screens.py [--work DIR] [--out docs/screenshots]

The screenshots are kept in the repository (``docs/screenshots/``): the docs build does not run a browser.
"""

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

from mpisim.live_view import Browser

HERE = Path(__file__).resolve().parent
ROIS = ["target=sphere:-3.5,0,0,1.2", "track=cylinder:-3.5,1.2,0,-3.5,5,0,1", "ventricle=sphere:-1.5,2,0,0.9"]
MOMENTS = (10.0, 17.0, 27.0)


def mpisim(*args):
    return subprocess.run([sys.executable, "-m", "mpisim", *map(str, args)], check=True, capture_output=True, text=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="live-view-work", help="folder for the matrix, the injection and the stream")
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "screenshots"))
    ap.add_argument("--port", type=int, default=5106)
    a = ap.parse_args(argv)
    d, out = Path(a.work), Path(a.out)
    d.mkdir(parents=True, exist_ok=True)
    sm, inj, stream = d / "sm.mdf", d / "inj.mdf", d / "stream.mdf"
    if not sm.exists():
        mpisim("sysmat", "--scanner", "bruker-3d", "--grid", "19x19x19", "--fov", "0.038,0.038,0.019", "--out", sm)
    if not inj.exists():
        mpisim("simulate", "--scanner", "bruker-3d", "--phantom", "injection", "--noise", "realistic",
               "--background-frames", 10, "--frames", 1410, "--dtype", "float32", "--out", inj)
    roi_args = [x for r in ROIS for x in ("--roi", r)] + ["--warn", "track", "--warn", "ventricle"]
    mpisim("live", inj, "--sm", sm, "--out", d / "prepare.mdf", "--overwrite", *roi_args)   # the operator, cached
    stream.unlink(missing_ok=True)
    writer = subprocess.Popen([sys.executable, "-m", "mpisim", "simulate", "--replay", str(inj), "--pace", "realtime",
                               "--out", str(stream)], stdout=subprocess.DEVNULL)
    live = subprocess.Popen([sys.executable, "-m", "mpisim", "live", str(stream), "--sm", str(sm), "--out",
                             str(d / "live.mdf"), "--overwrite", "--report", str(d / "live.json"), "--view",
                             str(a.port), *roi_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    try:
        while True:                                   # the view is up once its port answers
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", a.port)) == 0:
                    break
            if time.monotonic() - t0 > 60 or live.poll() is not None:
                raise SystemExit(f"the live view did not start: {live.stderr.read() if live.poll() is not None else ''}")
            time.sleep(0.1)
        with Browser(width=1300, height=700) as b:
            b.open(f"http://127.0.0.1:{a.port}/live")
            for k, when in enumerate(MOMENTS, 1):
                while True:
                    text = b.evaluate("window.Bokeh && Bokeh.documents.length ? "
                                      "Bokeh.documents[0].get_model_by_name('status').text : ''") or ""
                    if text.startswith("stream time") and float(text.split()[2]) >= when:
                        break
                    if time.monotonic() - t0 > 120:
                        raise SystemExit(f"the page did not reach {when} s of stream time: {text!r}")
                    time.sleep(0.05)
                path = b.screenshot(out / f"live_view_{k}.png")
                print(f"{path}: {text.split('<br>')[0]}")
    finally:
        said = live.communicate()
        writer.wait()
    print(said[0].strip())


if __name__ == "__main__":
    main()
