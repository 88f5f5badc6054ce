"""The live view of a live session (``mpisim live … --view PORT``): a page in the browser, served on this machine by
a Bokeh server (a well-kept library made for live scientific plots; no JavaScript of ours), that follows the
reconstruction as it runs.

The page (``http://127.0.0.1:PORT/live``) shows the newest image (the slice of a 2D sequence, maximum-intensity
projections along z and y of a 3D one), the iron in each followed ROI and elsewhere against the stream's time, the
share of the followed iron in the target with its 95 % interval (noise only), and a status line: frames seen,
images, frames dropped, latency, images per second — with the warnings raised (iron on the needle track, in a
ventricle) in red. Every open page updates five times a second; the live loop only hands over its latest state
(:meth:`LiveView.update`), the Bokeh server's own thread changes the page, so a slow browser never slows the
reconstruction.
"""

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import numpy as np

from .errors import MPISimError

__all__ = ["LiveView", "Browser", "REFRESH_MS", "check_port"]

REFRESH_MS = 200
"""How often an open page takes the session's latest state (ms)."""

HISTORY = 20_000
"""Points kept on the time plots."""


def check_port(port, address="127.0.0.1"):
    """Refuse a port that is not free on ``address`` (one line: the command cannot go on)."""
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise MPISimError(f"--view needs a port number 1..65535, got {port!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, port))
        except OSError as e:
            raise MPISimError(f"port {port} on {address} is in use or not allowed ({e.strerror}): choose another with "
                              f"--view PORT") from None


class LiveView:
    """The Bokeh server of a live session's page (module docstring), started at once in its own thread.

    grid : the reconstruction's :class:`~mpisim.grid.Grid`; rois : the followed ROIs' names; target : the one
    whose share is shown (or None); port, address : where it is served (this machine only by default)."""

    def __init__(self, grid, rois=(), target=None, port=5006, address="127.0.0.1", title="mpisim live"):
        check_port(port, address)
        try:
            from bokeh.server.server import Server       # loaded when a view is asked for
            from tornado.ioloop import IOLoop
        except ImportError:
            raise MPISimError("the live view needs Bokeh: pip install -e \".[live]\" (or pip install bokeh)") from None

        self.grid, self.rois, self.target, self.title = grid, list(rois), target, title
        self.port, self.address = port, address
        self.url = f"http://{address}:{port}/live"
        self._lock = threading.Lock()
        self._state, self._series, self._recent = None, [], []
        self._ready = threading.Event()
        self._error = None

        def serve():
            try:
                asyncio.set_event_loop(asyncio.new_event_loop())     # this thread's own loop for the server
                self.loop = IOLoop.current()
                self.server = Server({"/live": self._make_document}, io_loop=self.loop, port=port, address=address,
                                     allow_websocket_origin=[f"{address}:{port}", f"localhost:{port}"])
                self.server.start()
            except Exception as e:                     # the port was taken meanwhile, or bokeh failed to start
                self._error = e
                self._ready.set()
                return
            self._ready.set()
            self.loop.start()

        self._thread = threading.Thread(target=serve, name="mpisim-live-view", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise MPISimError(f"the live view could not start on {address}:{port}: {self._error}") from None

    # --- what the live loop calls -------------------------------------------------------------------------
    def update(self, progress):
        """Hand over the session's latest state (:meth:`mpisim.live._Collector.progress`). The time plots show
        means over the last ``progress["window"]`` images (0.5 s: :data:`mpisim.live.WARN_WINDOW_S`), the noise of
        a single image being larger than the changes a surgeon watches for."""
        with self._lock:
            self._state = dict(progress)
            raw = {"total": progress["total_kg"], **progress["rois"]}
            if self.rois:
                raw["elsewhere"] = progress["total_kg"] - sum(progress["rois"].values())
            self._recent.append(raw)
            del self._recent[:-max(1, int(progress.get("window") or 1))]
            mean = {k: float(np.mean([r[k] for r in self._recent])) for k in raw}
            row = {"t": progress["stream_time"], **{k: v * 1e9 for k, v in mean.items()}}
            row.update(self._share({**progress, "rois": {n: mean[n] for n in progress["rois"]},
                                    "roi_sigma": np.asarray(progress.get("roi_sigma") if len(
                                        progress.get("roi_sigma") or ()) else [np.nan] * len(self.rois), float)
                                    / np.sqrt(len(self._recent))}))
            self._series.append(row)
            del self._series[:-HISTORY]

    def _share(self, p):
        if self.target not in p["rois"]:
            return {}
        a = np.array([p["rois"][n] for n in self.rois])
        T = float(a.sum())
        if not T > 0:
            return {}
        f = p["rois"][self.target] / T
        sig = p.get("roi_sigma")
        sig = np.full(len(a), np.nan) if sig is None or not len(sig) else np.asarray(sig, float)
        j = self.rois.index(self.target)
        # σ of a_t / Σa from the ROIs' independent noise σ (first order)
        dfa = -f / T * np.ones(len(a))
        dfa[j] += 1 / T
        s = float(np.sqrt(np.nansum((dfa * sig) ** 2)))
        return {"share": 100 * f, "share_low": 100 * (f - 1.96 * s), "share_high": 100 * (f + 1.96 * s)}

    def close(self):
        """Stop the server (the pages stop updating)."""
        if getattr(self, "loop", None) is not None:
            self.loop.add_callback(self.server.stop)
            self.loop.add_callback(self.loop.stop)
            self._thread.join(5)

    # --- the page (runs on the server's thread) -----------------------------------------------------------
    def _panels(self):
        """[(title, (ix, iy) axes of the grid, projection axis or None)] of the image panels."""
        dims = [i for i in range(3) if self.grid.shape[i] > 1]
        if len(dims) == 3:
            return [("maximum along z", (0, 1), 2), ("maximum along y", (0, 2), 1)]
        if len(dims) == 2:
            return [("slice", tuple(dims), ({0, 1, 2} - set(dims)).pop())]
        return [("profile", (dims[0], dims[0]), None)]

    def _make_document(self, doc):
        from bokeh.layouts import column, row
        from bokeh.models import Band, ColumnDataSource, Div, LinearColorMapper
        from bokeh.palettes import Category10_10, Inferno256
        from bokeh.plotting import figure

        g = self.grid
        mapper = LinearColorMapper(palette=Inferno256, low=0.0, high=1.0)
        images, sources = [], []
        for title, (a, b), _ in self._panels():
            (x0, x1), (y0, y1) = g.extent(a), g.extent(b)
            f = figure(title=title, width=360, height=max(200, int(360 * (y1 - y0) / max(x1 - x0, 1e-9))),
                       x_range=(x0 * 1e3, x1 * 1e3), y_range=(y0 * 1e3, y1 * 1e3), match_aspect=True,
                       x_axis_label="xyz"[a] + " / mm", y_axis_label="xyz"[b] + " / mm", toolbar_location=None)
            src = ColumnDataSource({"image": [np.zeros((2, 2))]})
            f.image(image="image", x=x0 * 1e3, y=y0 * 1e3, dw=(x1 - x0) * 1e3, dh=(y1 - y0) * 1e3, source=src,
                    color_mapper=mapper)
            images.append(f)
            sources.append(src)
        names = self.rois + (["elsewhere"] if self.rois else ["total"])
        series = ColumnDataSource({k: [] for k in ["t", "total", *names, "share", "share_low", "share_high"]})
        fig_iron = figure(title="iron / µg (0.5 s means)", width=520, height=300, x_axis_label="stream time / s",
                          toolbar_location=None)
        for n, colour in zip(names, Category10_10):
            fig_iron.line("t", n, source=series, legend_label=n, color=colour, line_width=2)
        fig_iron.legend.location = "top_left"
        figs = [fig_iron]
        if self.target is not None:
            fig_share = figure(title=f"on target ({self.target}) / % of the followed iron", width=520, height=220,
                               x_axis_label="stream time / s", y_range=(0, 105), toolbar_location=None)
            fig_share.add_layout(Band(base="t", lower="share_low", upper="share_high", source=series,
                                      fill_alpha=0.25, fill_color="navy", line_color=None))
            fig_share.line("t", "share", source=series, line_width=2, color="navy")
            figs.append(fig_share)
        status = Div(text="waiting for the first image …", width=900, styles={"font-size": "14px"}, name="status")
        header = Div(text=f"<b>{self.title}</b>", width=900, styles={"font-size": "16px"})
        doc.add_root(column(header, status, row(*images, column(*figs))))
        doc.title = self.title
        seen = {"n": 0}

        def refresh():
            with self._lock:
                state, rows = self._state, self._series[seen["n"]:]
                seen["n"] = len(self._series)
            if state is None:
                return
            vol = g.unflatten(np.asarray(state["image"]) * 1e3)            # mmol/L
            for src, (_, (a, b), ax) in zip(sources, self._panels()):
                img = vol.max(axis=ax) if ax is not None else vol.reshape(vol.shape[a], -1)
                if a > b:
                    img = img.T
                src.data = {"image": [np.ascontiguousarray(img.T)]}
            mapper.high = max(float(vol.max()), 1e-6)
            if rows:
                new = {k: [r.get(k, np.nan) for r in rows] for k in series.data}
                series.stream(new, rollover=HISTORY)
            status.text = _status_html(state)

        refresh()                                   # a page opened mid-session shows the session's state at once
        doc.add_periodic_callback(refresh, REFRESH_MS)


def _status_html(s):
    """The status line of the page."""
    text = (f"stream time {s['stream_time']:.2f} s · {s['frames_seen']} frames seen · {s['images']} images · "
            f"{s['frames_dropped']} dropped · latency {s['latency_median_s'] * 1e3:.0f} ms (95th percentile "
            f"{s['latency_p95_s'] * 1e3:.0f} ms) · {s['images_per_second']:.1f} images/s")
    for name, w in s.get("warnings", {}).items():
        text += (f"<br><span style='color:#c00;font-weight:bold'>warning: iron in {name} "
                 f"({w['amount_kg'] * 1e9:.3g} µg) since image {w['block']}</span>")
    return text



BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
"""Headless browsers :class:`Browser` looks for."""


class Browser:
    """A headless Chromium driven through its DevTools protocol (tornado's websocket client, which the Bokeh server
    brings): open a page, read values from it, take a screenshot — what the live view's test and the docs'
    screenshots of it use. ``with Browser() as b: b.open(url); b.evaluate("1 + 1"); b.screenshot("x.png")``.
    Raises :class:`~mpisim.errors.MPISimError` where no Chromium is installed (Debian: apt-get install chromium)."""

    def __init__(self, width=1400, height=950):

        path = next((shutil.which(n) for n in BROWSERS if shutil.which(n)), None)
        if path is None:
            raise MPISimError("no Chromium found (Debian: apt-get install chromium)")
        self._profile = tempfile.TemporaryDirectory(prefix="mpisim-browser-", ignore_cleanup_errors=True)
        self._log = open(os.path.join(self._profile.name, "stderr.log"), "w+")
        self._proc = subprocess.Popen([path, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                       "--remote-debugging-port=0", f"--user-data-dir={self._profile.name}",
                                       f"--window-size={width},{height}", "about:blank"],
                                      stdout=subprocess.DEVNULL, stderr=self._log)
        self._loop, self._ws = None, None
        try:
            url = None
            end = time.monotonic() + 30
            while url is None and time.monotonic() < end and self._proc.poll() is None:
                with open(self._log.name) as fh:
                    m = re.search(r"DevTools listening on (ws://\S+)", fh.read())
                url = m.group(1) if m else None
                if url is None:
                    time.sleep(0.05)
            if url is None:
                raise MPISimError("Chromium did not start its DevTools endpoint within 30 s")
            self._loop = asyncio.new_event_loop()
            self._id, self._session = 0, None
            self._ws = self._run(self._connect(url))
        except BaseException:
            self.close()
            raise

    def _run(self, coro):
        return self._loop.run_until_complete(coro)

    async def _connect(self, url):
        from tornado.websocket import websocket_connect

        return await websocket_connect(url, max_message_size=256 << 20)

    async def _call(self, method, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self._session and not method.startswith("Target."):
            msg["sessionId"] = self._session
        await self._ws.write_message(json.dumps(msg))
        while True:
            reply = await self._ws.read_message()
            if reply is None:
                raise MPISimError("the browser closed its DevTools connection")
            data = json.loads(reply)
            if data.get("id") == self._id:
                if "error" in data:
                    raise MPISimError(f"browser: {method}: {data['error'].get('message')}")
                return data.get("result", {})

    def open(self, url):
        """Open ``url`` in a new page (the one later calls act on)."""
        target = self._run(self._call("Target.createTarget", url=url))["targetId"]
        self._session = self._run(self._call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
        return self

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (JSON-able), or None."""
        r = self._run(self._call("Runtime.evaluate", expression=expression, returnByValue=True))
        return r.get("result", {}).get("value")

    def screenshot(self, path):
        """Write the page as it is now to ``path`` (PNG)."""
        data = self._run(self._call("Page.captureScreenshot", format="png"))["data"]
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(data))
        return path

    def close(self):
        if getattr(self, "_ws", None) is not None:
            self._ws.close()
            self._ws = None
        if getattr(self, "_loop", None) is not None:
            self._loop.close()
            self._loop = None
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._log.close()
        self._profile.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
