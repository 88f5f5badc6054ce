"""The ``mpisim`` command. User mistakes exit with status 2 and one line on stderr."""

import argparse
import os
import sys

from .errors import MPISimError

EPILOG = """Units: SI throughout; fields in T/µ0 (12 mT = 0.012), concentrations in mol Fe/L.
Examples:
  mpisim simulate --scanner bruker-2d --phantom shapes --noise realistic --frames 10 --out meas.mdf
  mpisim sysmat --scanner bruker-2d --grid 41x41x1 --out sm.mdf
  mpisim reco meas.mdf --sm sm.mdf --out reco.mdf --png reco.png
  mpisim info meas.mdf
"""


def _float_or_si(text, name, unit=""):
    """Parse '25e-9', '25nm', '10pg', '2e-9' into SI floats (see :mod:`mpisim.units`)."""
    from .units import parse_quantity

    return parse_quantity(text, name, f"a number in {unit}" if unit else "")


def _backend_arg(p):
    p.add_argument("--backend", default="auto", choices=["auto", "numpy", "cupy"],
                   help="array backend: cupy on a GPU, numpy on the CPU (default: auto)")


def _tracer_from_args(args):
    from .particles import Tracer, default_tracer

    from .units import parse_diameter

    d = parse_diameter(args.tracer_diameter)
    kw = {}
    if getattr(args, "relaxation_time", None) is not None:
        kw["relaxation_time"] = _float_or_si(args.relaxation_time, "--relaxation-time", "s")
        if not 0 <= kw["relaxation_time"] <= 1e-3:
            raise MPISimError(f"--relaxation-time must be 0-1 ms in s (e.g. 3e-6), got {args.relaxation_time!r}")
    if getattr(args, "size_sigma", None):
        kw["size_sigma"] = float(args.size_sigma)
    return default_tracer(d, **kw) if not kw else Tracer(core_diameter=d, name=f"magnetite-{d * 1e9:g}nm", **kw)


def _add_tracer_args(p):
    p.add_argument("--tracer-diameter", default="25e-9", metavar="D",
                   help="median core diameter in m (25e-9, or 25nm; default 25 nm)")
    p.add_argument("--relaxation-time", default=None, metavar="TAU", help="Debye relaxation time in s (default: none)")
    p.add_argument("--size-sigma", default=None, type=float, metavar="S",
                   help="σ of a log-normal core-size distribution (default: monodisperse)")


def cmd_simulate(args):
    from .io.atomic import check_output_path
    from .phantoms import get_phantom
    from .scanner import get_scanner
    from .forward import SimulationSettings, simulate

    check_output_path(args.out, args.overwrite)
    scanner = get_scanner(args.scanner)
    tracer = _tracer_from_args(args)
    kw = {"frames": args.frames, "background_frames": args.background_frames, "seed": args.seed,
          "averages": args.averages, "dtype": args.dtype}
    if args.noise == "realistic":
        settings = SimulationSettings.realistic(scanner, **kw)
    else:
        nd = 0.0 if args.noise in (None, "none", "0") else _float_or_si(args.noise, "--noise", "V/√Hz")
        if not 0 <= nd <= 1e-3:
            raise MPISimError(f"--noise is a noise density in V/√Hz (e.g. 2e-9) or 'realistic', got {args.noise!r}")
        settings = SimulationSettings(noise_density=nd, **kw)
    if args.transfer_function:
        settings = SimulationSettings(**{**settings.to_dict(), "transfer_function": args.transfer_function})
    pkw = {}
    if args.concentration is not None:
        from .units import parse_concentration

        pkw["concentration"] = parse_concentration(args.concentration)
    phantom = get_phantom(args.phantom, scanner, **pkw)
    meas = simulate(scanner, tracer, phantom, settings, backend=args.backend, progress=True, out=args.out,
                    overwrite=args.overwrite)
    print(f"wrote {args.out}: {meas.data.shape[0]} frame(s) ({settings.background_frames} background) × "
          f"{meas.num_channels} channels × {meas.num_samples} samples; phantom {phantom.name!r} with "
          f"{phantom.iron_mass * 1e9:.4g} µg Fe; noise {settings.noise_density:g} V/√Hz")


def cmd_info(args):
    from .io.mdf import format_info, read_header

    for i, path in enumerate(args.files):
        if i:
            print()
        print(format_info(read_header(path)))


def build_parser():
    p = argparse.ArgumentParser(prog="mpisim", description="Magnetic particle imaging simulator and reconstructor.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__

    p.add_argument("--version", action="version", version=f"mpisim {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("simulate", help="simulate a measurement of a phantom and write an MDF file",
                       description="Simulate an MPI measurement: FFP trajectory, Langevin particles, receive "
                                   "chain and noise. Writes an MDF v2.1 measurement file (time data, "
                                   "background frames first).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("--scanner", default="bruker-2d", help="preset (bruker-1d, bruker-2d, bruker-3d) or a scanner .toml")
    s.add_argument("--phantom", default="point",
                   help="point, shapes, concentration (OpenMPIData, 3D), concentration-2d (2D raster, not OpenMPIData), "
                        "resolution, shape, graft, a phantom .toml or a .npy array")
    s.add_argument("--concentration", default=None, help="phantom concentration in mol Fe/L (0.05) or with a unit (50mmol/L); phantom's own if not given")
    _add_tracer_args(s)
    s.add_argument("--frames", type=int, default=1, help="foreground frames")
    s.add_argument("--background-frames", type=int, default=0, help="empty-scanner frames (stored first)")
    s.add_argument("--averages", type=int, default=1, help="acquisitions averaged per frame")
    s.add_argument("--noise", default=None,
                   help="'realistic' (preset noise, background and feed-through) or a noise density in V/√Hz")
    s.add_argument("--transfer-function", default="", help="transfer-function file applied to the signal")
    s.add_argument("--seed", type=int, default=0, help="noise seed (-1: random)")
    s.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    _backend_arg(s)
    s.add_argument("--out", required=True, help="output MDF file")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    s.set_defaults(func=cmd_simulate)

    i = sub.add_parser("info", help="summarise MDF files", description="Print scanner, sequence, shape and flags.")
    i.add_argument("files", nargs="+", help="MDF files")
    i.set_defaults(func=cmd_info)

    for register in _EXTRA:
        register(sub)
    return p


_EXTRA = []


def register(fn):
    """Decorator for modules that add sub-commands."""
    _EXTRA.append(fn)
    return fn


def _load_extra():
    from . import cli_extra  # noqa: F401  (registers sysmat, reco, ...)


def main(argv=None):
    """The ``mpisim`` command. Interrupts are handled from the first line (see :mod:`mpisim.interrupt`);
    run as a program (``argv`` None), the handlers stay until the process exits, so a signal that
    arrives after the work is done cannot turn into a traceback on the way out."""
    from . import interrupt
    from .io import atomic

    with interrupt.handlers(restore=argv is not None), atomic.record_outputs() as written:
        try:
            _load_extra()
            parser = build_parser()
            args = parser.parse_args(argv)
            if not getattr(args, "func", None):
                parser.print_help()
                return 2
            args.func(args)
            interrupt.check()                    # a signal during the last, unchecked step
        except MPISimError as e:
            print(f"mpisim {args.command}: error: {e}", file=sys.stderr)
            return 2
        except (KeyboardInterrupt, interrupt.Interrupted) as e:
            code = e.exit_code if isinstance(e, interrupt.Interrupted) else 130
            atomic.remove_outputs(written)       # an interrupt leaves no output, even one already renamed
            name = getattr(locals().get("args"), "command", None)
            print(f"mpisim{' ' + name if name else ''}: interrupted ({'SIGTERM' if code == 143 else 'Ctrl-C'}); "
                  f"no output written", file=sys.stderr)
            return code
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
