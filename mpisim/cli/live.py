"""``mpisim live``: follow a measurement while it is recorded and reconstruct its frames as they arrive."""

import json
import sys
import time

import numpy as np

from ..errors import MPISimError
from ..io.atomic import atomic_path, check_output_path
from ..io.reco_mdf import write_reconstruction
from ..io.sm_file import load_system_matrix
from ..live import OPERATORS, POLICIES, LiveSettings, follow
from ..live_view import LiveView, check_port
from ..plot import plot_live, save_figure_atomic
from ..quant import parse_roi
from .common import backend_arg, overwrite_arg

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("live", help="reconstruct a measurement's frames as they are recorded",
                       description="Follow an MDF measurement while it is written (a scanner's stream, or mpisim "
                                   "simulate --pace realtime) and reconstruct each block of frames as soon as it is "
                                   "in the file, with the offline defaults chosen on the first block (rows, "
                                   "background, λ, sweeps) and then fixed. The stream's state (frames seen, "
                                   "dropped, latency) is shown while it runs; Ctrl-C ends the session with its "
                                   "outputs.")
    p.add_argument("measurement", help="MDF measurement file, growing or finished")
    p.add_argument("--sm", required=True, help="MDF system-matrix (calibration) file")
    p.add_argument("--out", required=True, help="output MDF file with /reconstruction: one frame per image")
    p.add_argument("--report", default=None,
                   help="also write a JSON report: the session's figures, what the set-up chose, each image's "
                        "block, times and latency, each ROI's iron")
    p.add_argument("--png", default=None, help="also write a figure: the last image, latency and ROI iron over time")
    p.add_argument("--average", type=int, default=1, help="foreground frames averaged into one image (default 1)")
    p.add_argument("--sweeps", default="auto",
                   help="Kaczmarz sweeps per image, or auto: as many as the stopping rule chose on the first "
                        "block (default auto)")
    p.add_argument("--policy", default="batch", choices=POLICIES,
                   help="when blocks arrive faster than they are reconstructed: batch (reconstruct all that are in "
                        "at once, one pass for them all; beyond 16 the oldest are dropped), latest (reconstruct the "
                        "newest, count the others dropped) or all (queue them one by one; the latency grows) "
                        "(default batch)")
    p.add_argument("--operator", default="auto", choices=OPERATORS,
                   help="how a block becomes an image: tikhonov (the solution the sweeps converge to, through a "
                        "truncated eigen-decomposition of the rows computed once: two small matrix products per "
                        "image), kaczmarz (the fixed sweeps), or auto (tikhonov for a linear reconstruction) "
                        "(default auto)")
    p.add_argument("--roi", action="append", default=[],
                   help="ROI whose iron is followed in every image (corrected for what spills between the ROIs; "
                        "the rest reported as elsewhere), as quantify --roi: [name=]sphere:x,y,z,r, "
                        "[name=]cylinder:x0,y0,z0,x1,y1,z1,r (mm) ...; repeatable, disjoint")
    p.add_argument("--warn", action="append", default=[],
                   help="name of a --roi to watch (a needle track, a ventricle): warn when iron starts to arrive "
                        "there (a ramp in its amount, z > 6, not explained by spill from the other ROIs: "
                        "mpisim.alarms); repeatable")
    p.add_argument("--target", default=None,
                   help="name of the --roi that is the target: the report gives the on-target fraction (its iron "
                        "over the iron of all the ROIs) with its interval (default: the first --roi)")
    p.add_argument("--view", type=int, default=None, metavar="PORT",
                   help="serve a live view in the browser at http://127.0.0.1:PORT/live (Bokeh): the newest image, the "
                        "iron in each ROI and the on-target share against time, the stream's state and the warnings")
    p.add_argument("--idle-timeout", type=float, default=10.0,
                   help="s without a new frame after which a stream not marked complete is taken as stopped "
                        "(default 10)")
    p.add_argument("--start-timeout", type=float, default=30.0,
                   help="s to wait for the file and its first block of frames (default 30)")
    backend_arg(p)
    overwrite_arg(p)
    p.add_argument("--json", action="store_true", help="print the session's figures as JSON")
    p.set_defaults(func=run)


class _Status:
    """The stream's state on stderr: a line at most every ``every`` s (overwritten on a terminal)."""

    def __init__(self, every=1.0):
        self.every, self.last, self.tty, self.latest = every, 0.0, sys.stderr.isatty(), None

    def __call__(self, p, final=False):
        self.latest = p
        now = time.monotonic()
        if not final and now - self.last < self.every:
            return
        self.last = now
        text = (f"live: {p['frames_seen']} frames seen, {p['images']} images, {p['frames_dropped']} dropped; "
                f"latency {p['latency_median_s'] * 1e3:.0f} ms (95th percentile {p['latency_p95_s'] * 1e3:.0f} ms)")
        if np.isfinite(p["images_per_second"]):
            text += f"; {p['images_per_second']:.1f} images/s"
        if self.tty and not final:
            print("\r" + text, end="", file=sys.stderr, flush=True)
        else:
            print(("\r" if self.tty else "") + text, file=sys.stderr, flush=True)


def run(args):
    for out in (args.out, args.report, args.png):
        if out:
            check_output_path(out, args.overwrite)
    if args.sweeps != "auto":
        try:
            sweeps = int(args.sweeps)
        except ValueError:
            raise MPISimError(f"--sweeps is a whole number ≥ 1 or auto, got {args.sweeps!r}") from None
    else:
        sweeps = "auto"
    settings = LiveSettings(average=args.average, sweeps=sweeps, policy=args.policy, operator=args.operator,
                            idle_timeout=args.idle_timeout, start_timeout=args.start_timeout, warn=tuple(args.warn))
    rois = [parse_roi(r) for r in args.roi]
    if (args.warn or args.target) and not rois:
        raise MPISimError("--warn and --target name ROIs: give them with --roi")
    bad = [t for t, r in zip(args.roi, rois) if not hasattr(r, "name") or t.strip().lower().startswith(("all", "chambers"))]
    if bad:
        raise MPISimError(f"--roi {bad[0]!r}: live follows drawn ROIs (sphere, box, cylinder), not {bad[0].split(':')[0]}")
    names = [r.name for r in rois]
    for n in args.warn:
        if n not in names:
            raise MPISimError(f"--warn {n!r}: no ROI of that name (ROIs: {', '.join(names)})")
    if args.target is not None and args.target not in names:
        raise MPISimError(f"--target {args.target!r}: no ROI of that name (ROIs: {', '.join(names)})")
    if args.view is not None:
        check_port(args.view)
    sm = load_system_matrix(args.sm)
    status = _Status()
    view = None
    if args.view is not None:
        view = LiveView(sm.grid, names, args.target or (names[0] if names else None), port=args.view,
                        title=f"mpisim live: {args.measurement}")
        print(f"live view: {view.url}", file=sys.stderr, flush=True)

    def on_block(p):
        status(p)
        if view is not None:
            view.update(p)

    try:
        res = follow(args.measurement, sm, settings=settings, rois=rois, backend=args.backend, on_block=on_block)
    finally:
        if view is not None:
            view.close()
    if status.last:                       # the last state, in full
        status(status.latest, final=True)
    for name, w in res.info.get("warnings", {}).items():
        print(f"mpisim live: warning: iron in {name!r} from image {w['block']} (frame {w['frame']}): "
              f"{w['amount_kg'] * 1e9:.3g} µg, rising since {w['onset_s']:.1f} s of the stream (z {w['z']:.1f})",
              file=sys.stderr)
    write_reconstruction(args.out, res.reconstruction(), overwrite=args.overwrite)
    s = res.summary()
    target = args.target or (names[0] if names else None)
    doc = _report(args, res, s, target)
    if args.report:
        with atomic_path(args.report, args.overwrite) as tmp:
            with open(tmp, "w") as fh:
                json.dump(doc, fh, indent=1)
    if args.png:
        save_figure_atomic(lambda tmp: plot_live(res, tmp), args.png, args.overwrite)
    if args.json:
        print(json.dumps({k: v for k, v in doc.items() if k != "images"}, indent=1))
        return
    print(f"wrote {args.out}: {s['blocks']} image(s) of {settings.average} frame(s) each; {s['frames_seen']} "
          f"foreground frames seen, {s['frames_dropped']} dropped ({settings.policy}), "
          f"{res.info['frames_left']} left at the end; {s['frames_per_second']:.3g} frames/s; latency median "
          f"{s['latency_median_s'] * 1e3:.3g} ms, 95th percentile {s['latency_p95_s'] * 1e3:.3g} ms (from the frame "
          f"seen in the file: {s['session_latency_median_s'] * 1e3:.3g} ms, {s['session_latency_p95_s'] * 1e3:.3g} "
          f"ms); λ "
          f"{res.info['lambda']:g}; {res.info['operator_why']}; set-up {res.info['setup_seconds']:.3g} s; ended: "
          f"{s['ended']}"
          + (_on_target_line(doc["on_target"], target) if target else "")
          + (f"\nwrote {args.report}" if args.report else "") + (f"\nwrote {args.png}" if args.png else ""))


def _report(args, res, s, target):
    """The JSON report: the session's figures ``s``, the set-up, the on-target fraction and every image."""
    return {"measurement": args.measurement, "system_matrix": args.sm, **s, "setup": res.public_info(),
            "target": target, "on_target": res.on_target(target) if target else None,
            "images": [{"block": int(b), "frame": int(f), "written": float(w), "arrived": float(a), "done": float(d),
                        "latency_s": float(d - w), "total_kg": float(res.totals[i]),
                        **{f"{n}_kg": float(v[i]) for n, v in res.rois.items()}}
                       for i, (b, f, w, a, d) in enumerate(zip(res.blocks, res.frames, res.written, res.arrived,
                                                                res.done))],
            "roi_iron": "kg per image, corrected for spill between the ROIs (transfer matrix through the "
                        "reconstruction); elsewhere: the image's total minus the ROIs'"}


def _on_target_line(ot, target):
    """The line giving the last image's on-target fraction with its interval."""
    if ot is None:
        return ""
    return (f"\non target ({target!r}) over the last {ot['images']} image(s): {ot['fraction']:.1%} of the "
            f"{ot['followed_kg'] * 1e9:.3g} µg in the ROIs (95 % interval {ot['low']:.1%}–{ot['high']:.1%}, noise only)")
