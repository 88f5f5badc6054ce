"""The live view (``mpisim live --view PORT``): a Bokeh page that follows a live session. Opened in headless
Chromium where one is installed (Debian: apt-get install chromium), else through Bokeh's own client: the page's
status line changes as images come."""

import shutil
import socket
import threading
import time


import pytest

import mpisim
from mpisim.cli import main
from mpisim.io.stream import StreamWriter
from mpisim.live import LiveSettings, follow
from mpisim.systemmatrix import CalibrationSettings, build_system_matrix, default_grid

pytest.importorskip("bokeh")

from mpisim.live_view import BROWSERS, Browser, LiveView  # noqa: E402  (bokeh present)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stream_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("view")
    sc = mpisim.get_scanner("bruker-2d")
    tr = mpisim.Tracer()
    build_system_matrix(sc, tr, default_grid(sc, (21, 21, 1)), CalibrationSettings(background_frames=10),
                        out=d / "sm.mdf")
    meas = mpisim.simulate(sc, tr, mpisim.get_phantom("shapes", sc),
                           mpisim.SimulationSettings.realistic(sc, frames=2000, background_frames=10, seed=6))
    return d, mpisim.load_system_matrix(d / "sm.mdf"), meas


def _status(url, wait):
    """The page's status text now and ``wait`` s later, read in a browser or, without one, with Bokeh's client."""
    if any(shutil.which(b) for b in BROWSERS):
        with Browser() as b:
            b.open(url)
            texts = []
            for _ in range(2):
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    t = b.evaluate("window.Bokeh && Bokeh.documents.length ? "
                                   "Bokeh.documents[0].get_model_by_name('status').text : null")
                    if t and "frames seen" in t and (not texts or t != texts[-1]):
                        break
                    time.sleep(0.1)
                texts.append(t)
                time.sleep(wait)
            return texts, "chromium"
    from bokeh.client import pull_session

    texts = []
    for _ in range(2):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:           # a new page each time, showing the session's state then
            with pull_session(url=url) as session:
                t = session.document.get_model_by_name("status").text
            if "frames seen" in t and (not texts or t != texts[-1]):
                break
            time.sleep(0.2)
        texts.append(t)
        time.sleep(wait)
    return texts, "bokeh client"


def test_the_live_view_follows_the_session(stream_inputs, tmp_path):
    d, S, meas = stream_inputs
    path = tmp_path / "s.mdf"
    port = _free_port()
    view = LiveView(S.grid, ["dot", "bar"], "dot", port=port)

    def write():
        with StreamWriter(path, meas, overwrite=True) as w:
            for a in range(0, meas.num_frames, 20):
                w.append(meas.data[a:a + 20], meas.is_background[a:a + 20])
                time.sleep(0.05)

    writer = threading.Thread(target=write)
    writer.start()
    result = {}
    session = threading.Thread(target=lambda: result.update(res=follow(
        path, S, settings=LiveSettings(average=20, policy="all", warn=("bar",)),
        rois=[mpisim.Sphere((4e-3, 5e-3, 0.0), 3e-3, "dot"), mpisim.Box((-4e-3, -8e-3, -1e-3), (8e-3, -4e-3, 1e-3), "bar")],
        on_block=view.update)))
    session.start()
    try:
        texts, how = _status(view.url, 1.0)
    finally:
        writer.join()
        session.join()
        view.close()
    assert all(t and "frames seen" in t for t in texts), (how, texts)
    seen = [int(t.split(" frames seen")[0].split("·")[-1]) for t in texts]
    assert seen[1] > seen[0], (how, texts)
    assert result["res"].ended == "the stream is complete"


def test_a_port_in_use_is_refused_in_one_line(stream_inputs, tmp_path, capsys):
    d, _, meas = stream_inputs
    path = tmp_path / "s.mdf"
    with StreamWriter(path, meas, overwrite=True) as w:
        w.append(meas.data[:40], meas.is_background[:40])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["live", str(path), "--sm", str(d / "sm.mdf"), "--out", str(tmp_path / "o.mdf"), "--view",
                     str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port}" in err and "in use" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mdf").exists()


def test_the_browser_reads_a_page(tmp_path):
    if not any(shutil.which(b) for b in BROWSERS):
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    page = tmp_path / "p.html"
    page.write_text("<html><body><p id='x'>40</p><script>document.getElementById('x').textContent = 40 + 2"
                    "</script></body></html>")
    with Browser(width=400, height=300) as b:
        b.open(page.as_uri())
        time.sleep(0.5)
        assert b.evaluate("document.getElementById('x').textContent") == "42"
        b.screenshot(tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"

