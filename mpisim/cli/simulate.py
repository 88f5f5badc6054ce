"""``mpisim simulate``: a measurement of a phantom, written frame block by frame block."""

from dataclasses import replace

import numpy as np

from ..errors import MPISimError
from ..forward import SimulationSettings, simulate, simulate_series, stream_frames
from ..io.stream import ReplayFrames
from ..injection import injection_preset, region_grid
from ..io.atomic import check_output_path
from ..phantoms import get_phantom, with_fiducials
from ..units import parse_concentration, parse_mass
from .common import add_tracer_args, backend_arg, float_or_si, scanner_from_arg, tracer_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub):
    s = sub.add_parser("simulate", help="simulate a measurement of a phantom and write an MDF file",
                       description="Simulate an MPI measurement: FFP trajectory, Langevin particles, receive "
                                   "chain and noise. Writes an MDF v2.1 measurement file (time data, "
                                   "background frames first).")
    s.add_argument("--scanner", default="bruker-2d", help="preset (bruker-1d, bruker-2d, bruker-3d) or a scanner .toml (default bruker-2d)")
    s.add_argument("--phantom", default="point",
                   help="point, shapes, concentration (OpenMPIData, 3D), concentration-2d (2D raster, not OpenMPIData), "
                        "resolution, shape, graft, viability, injection (a guided cell injection over --frames frames: "
                        "reflux and a leak; every frame's truth recorded), a phantom .toml or a .npy array "
                        "(default point)")
    s.add_argument("--concentration", default=None, help="phantom iron concentration with its unit, e.g. 50mmol/L or 0.05mol/L (default: the phantom's own)")
    add_tracer_args(s)
    s.add_argument("--frames", type=int, default=1, help="foreground frames (default 1)")
    s.add_argument("--background-frames", type=int, default=0, help="empty-scanner frames, stored first (default 0)")
    s.add_argument("--averages", type=int, default=1, help="acquisitions averaged per frame (default 1)")
    s.add_argument("--noise", default=None,
                   help="'realistic' (preset noise, background and feed-through) or a noise density in V/√Hz "
                        "(default: none, noise-free)")
    s.add_argument("--transfer-function", default="", help="transfer-function file applied to the signal (default: a flat chain)")
    s.add_argument("--seed", type=int, default=0, help="noise seed, -1 for a random one (default 0)")
    s.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="precision of the stored samples (default float64)")
    backend_arg(s)
    s.add_argument("--fiducial", action="append", default=[],
                   help="x,y,z,r=AMOUNT: a reference sample of known iron added to the phantom, a sphere at x,y,z of "
                        "radius r (mm) holding AMOUNT (with its unit, e.g. 5ug); repeatable. Quantify it back with "
                        "quantify --fiducial NAME=sphere:x,y,z,R=AMOUNT (a negative x: --fiducial=-7,7,0,1=5ug)")
    s.add_argument("--pace", default=None,
                   help="realtime, or a speed-up such as 2x: write the frames as a scanner records them, appended in "
                        "place at the sequence's pace, the file readable at every moment (mpisim live follows it; "
                        "Ctrl-C stops the stream and keeps the frames written). Default: the file written whole, as "
                        "fast as the frames are computed")
    s.add_argument("--replay", default=None,
                   help="instead of simulating, play back this recorded (or simulated) MDF measurement as a scanner "
                        "would deliver it: with --pace, its frames are streamed to --out at the pace they were "
                        "acquired (its per-frame truth, if any, travels with it); the phantom and noise options "
                        "do not apply")
    s.add_argument("--out", required=True, help="output MDF file")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    s.set_defaults(func=run)


def _pace(text):
    """``--pace``: realtime → 1.0, ``2x`` or ``0.5`` → a speed-up factor, None → None."""
    if text is None:
        return None
    t = str(text).strip().lower()
    if t in ("realtime", "real-time", "1x"):
        return 1.0
    try:
        v = float(t.removesuffix("x"))
    except ValueError:
        v = float("nan")
    if not 1e-3 <= v <= 1e3:
        raise MPISimError(f"--pace is realtime or a speed-up between 0.001x and 1000x (e.g. 2x), got {text!r}")
    return v


def _stream_note(meas):
    """The line saying how a streamed simulation kept the sequence's pace (empty when not streamed)."""
    st = meas.provenance.stream
    if not st:
        return ""
    kept = "kept the sequence's pace" if st["behind_s"] < 0.05 else \
        f"fell {st['behind_s']:.3g} s behind the sequence (the simulation is slower than the scanner)"
    return (f"\nstreamed {st['frames']} frame(s) in {st['seconds']:.3g} s at {st['pace']:g}× the sequence's pace, "
            f"{st['frames_per_block']} per block: {kept}")


def _fiducial(text):
    """(center m, radius m, iron kg) from the command line's ``x,y,z,r=AMOUNT`` (mm; the amount with its unit)."""
    geo, sep, amount = str(text).partition("=")
    try:
        vals = [float(v) * 1e-3 for v in geo.split(",")]
    except ValueError:
        vals = []
    if not sep or len(vals) != 4 or not vals[3] > 0:
        raise MPISimError(f"--fiducial {text!r}: write x,y,z,r=AMOUNT (mm, r > 0; the amount with its unit, e.g. 5ug)")
    return tuple(vals[:3]), vals[3], parse_mass(amount, f"--fiducial {text!r} iron", (1e-18, 1e-3))


def _injection(args, scanner, tracer, settings):
    """``--phantom injection``: the preset guided injection (:func:`mpisim.injection.injection_preset`) as a
    series of frames from the start of the infusion, each its own distribution; the truth of every frame in
    /_mpisim/series."""
    if args.concentration is not None or args.fiducial:
        raise MPISimError("--phantom injection sets its own iron (1e5 cells/µL, 10 pg each): leave out "
                          "--concentration and --fiducial")
    inj = injection_preset(scanner)
    grid = region_grid(scanner, inj)
    meas = simulate_series(scanner, tracer, inj, grid, settings, backend=args.backend, progress=True, out=args.out,
                           overwrite=args.overwrite, pace=_pace(args.pace))
    span = settings.frames * scanner.drive_field.cycle * settings.averages
    a = inj.amounts(span)
    print(f"wrote {args.out}: {meas.data.shape[0]} frame(s) ({settings.background_frames} background) of an injection "
          f"over {span:.3g} s ({inj.duration:.3g} s infusion, reflux from {inj.reflux_onset:g} s, leak from "
          f"{inj.leak_onset:g} s); at the last frame {a['total'] * 1e9:.3g} µg infused: target "
          f"{a['target'] * 1e9:.3g}, track {a['track'] * 1e9:.3g}, ventricle {a['ventricle'] * 1e9:.3g} µg "
          f"(every frame's truth in /_mpisim/series){_stream_note(meas)}")
    return 0


def _replay(args):
    """``--replay FILE --pace P``: the recording's frames streamed to --out at P × their acquisition pace."""
    if args.pace is None:
        raise MPISimError("--replay plays a recording back at a pace: give --pace realtime (or a speed-up, e.g. 2x)")
    src = ReplayFrames(args.replay)
    try:
        n = src.num_frames
        head = src.measurement(np.empty((n, src.head.data.shape[1], src.head.num_rx_channels, 0), src.dtype))
        st = stream_frames(args.out, head, src, _pace(args.pace), args.overwrite)
    finally:
        src.close()
    head.provenance = replace(head.provenance, stream=st)
    print(f"wrote {args.out}: {n} frame(s) of {args.replay} ({int(np.count_nonzero(head.is_background))} background)"
          f"{_stream_note(head)}")
    return 0


def run(args):
    check_output_path(args.out, args.overwrite)
    _pace(args.pace)
    if args.replay is not None:
        return _replay(args)
    scanner = scanner_from_arg(args.scanner)
    tracer = tracer_from_args(args)
    kw = {"frames": args.frames, "background_frames": args.background_frames, "seed": args.seed,
          "averages": args.averages, "dtype": args.dtype}
    if args.noise == "realistic":
        settings = SimulationSettings.realistic(scanner, **kw)
    else:
        nd = 0.0 if args.noise in (None, "none", "0") else float_or_si(args.noise, "--noise", "V/√Hz")
        if not 0 <= nd <= 1e-3:
            raise MPISimError(f"--noise is a noise density in V/√Hz (e.g. 2e-9) or 'realistic', got {args.noise!r}")
        settings = SimulationSettings(noise_density=nd, **kw)
    if args.transfer_function:
        settings = SimulationSettings(**{**settings.to_dict(), "transfer_function": args.transfer_function})
    if args.phantom == "injection":
        return _injection(args, scanner, tracer, settings)
    pkw = {}
    if args.concentration is not None:
        pkw["concentration"] = parse_concentration(args.concentration)
    phantom = get_phantom(args.phantom, scanner, **pkw)
    if args.fiducial:
        phantom = with_fiducials(phantom, [_fiducial(f) for f in args.fiducial])
    meas = simulate(scanner, tracer, phantom, settings, backend=args.backend, progress=True, out=args.out,
                    overwrite=args.overwrite, pace=_pace(args.pace))
    print(f"wrote {args.out}: {meas.data.shape[0]} frame(s) ({settings.background_frames} background) × "
          f"{meas.num_rx_channels} channels × {meas.num_samples} samples; phantom {phantom.name!r} with "
          f"{phantom.iron_mass * 1e9:.4g} µg Fe; noise {settings.noise_density:g} V/√Hz{_stream_note(meas)}")
