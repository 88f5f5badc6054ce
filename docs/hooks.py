"""MkDocs hook: before every build, run the examples (their figures land in docs/figures/), execute
the student notebooks into docs/course/ and write the generated pages (API reference from docstrings,
detection-limit result, the presets' figures of merit); after it, serve MathJax from the site itself
(no network) on every page with equations. Nothing generated is committed.

``$MPISIM_DOCS_PREBUILT`` names a folder with ``figures/`` (the examples' outputs) and ``course/`` (the
executed student notebooks) that the test suite has already made with :func:`run_example` and
:func:`execute_notebook`: the build copies them instead of running everything again."""

import html
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
EXAMPLES = sorted((ROOT / "examples").glob("[0-9]*.py"))
STUDENT = sorted((ROOT / "course" / "notebooks" / "student").glob("[0-9][0-9]_*.ipynb"))
PREBUILT = "MPISIM_DOCS_PREBUILT"
MATHJAX_DIR = "assets/mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"


def on_pre_build(config, **kw):
    figs = DOCS / "figures"
    figs.mkdir(exist_ok=True)
    gen = DOCS / "generated"
    gen.mkdir(exist_ok=True)
    course = DOCS / "course"
    cache = os.environ.get("MPISIM_CACHE_DIR", str(ROOT / ".docs-cache"))
    pre = os.environ.get(PREBUILT)
    if pre:
        pre = Path(pre)
        missing = [f"course/{p.name}" for p in STUDENT if not (pre / "course" / p.name).is_file()]
        if missing or not (pre / "figures").is_dir():
            raise RuntimeError(f"${PREBUILT}={pre} lacks {', '.join(missing) or 'figures/'}")
        shutil.copytree(pre / "figures", figs, dirs_exist_ok=True)
        for p in STUDENT:
            shutil.copyfile(pre / "course" / p.name, course / p.name)
    else:
        for script in EXAMPLES:
            r = run_example(script, figs, cache)
            if r.returncode:
                raise RuntimeError(f"example {script.name} failed:\n{r.stderr[-2000:]}")
        import nbformat

        for src in STUDENT:
            nbformat.write(execute_notebook(src, static=True, cache_dir=cache), course / src.name)
    (gen / "api.md").write_text(api_page(), encoding="utf-8")
    (gen / "detection-limit.md").write_text(detection_page(figs / "detection_limit.json"), encoding="utf-8")
    (gen / "design-figures.md").write_text(design_page(), encoding="utf-8")


def run_example(script, figures, cache_dir, timeout=None):
    """Run one example script with its figures going to ``figures``; the CompletedProcess."""
    env = dict(os.environ, MPISIM_FIGURES=str(figures), MPLBACKEND="Agg", MPISIM_CACHE_DIR=str(cache_dir))
    return subprocess.run([sys.executable, Path(script).name], cwd=Path(script).parent, env=env,
                          capture_output=True, text=True, timeout=timeout)


def execute_notebook(src, *, static, cache_dir, timeout=300, append=()):
    """Execute the notebook ``src`` in a fresh kernel (in its folder) and return it with its outputs.
    ``static``: sliders drawn once at their initial values ($MPISIM_COURSE_STATIC), as the docs show
    them, where no browser runs the widgets. ``append``: code run as extra cells at the end (tests).
    A failing cell raises nbclient's CellExecutionError."""
    import nbformat
    from nbclient import NotebookClient

    env = dict(os.environ, MPISIM_CACHE_DIR=str(cache_dir))
    env.pop("MPISIM_COURSE_STATIC", None)
    env.pop("MPLBACKEND", None)                 # the kernel's inline figures, whatever the caller uses
    if static:
        env["MPISIM_COURSE_STATIC"] = "1"
    nb = nbformat.read(src, as_version=4)
    nb.cells.extend(nbformat.v4.new_code_cell(code) for code in append)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(Path(src).parent)}}
                   ).execute(env=env, stderr=subprocess.DEVNULL)       # the kernel's start-up chatter
    return nb


# --- equations: MathJax served from the site ----------------------------------------------------------

def mathjax_source():
    """The folder of a local MathJax 2 (MathJax.js and its config, jax, fonts): the jupyter-server-mathjax
    package's, or Debian's libjs-mathjax."""
    spec = importlib.util.find_spec("jupyter_server_mathjax")       # located, not imported (no server)
    candidates = [Path(p) / "static" for p in (spec.submodule_search_locations or [])] if spec else []
    candidates.append(Path("/usr/share/javascript/mathjax"))
    for c in candidates:
        if (c / "MathJax.js").is_file() and (c / "config" / f"{MATHJAX_CONFIG}.js").is_file():
            return c
    raise RuntimeError("no local MathJax for the docs' equations: pip install jupyter-server-mathjax "
                       "(or apt-get install libjs-mathjax)")


_MATH_CONFIG = """<script type="text/x-mathjax-config">
MathJax.Hub.Config({%s
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null},
  messageStyle: "none", showMathMenu: false
});
</script>
<script src="%s?config=%s"></script>
"""
_MARKDOWN_MATH = """
  tex2jax: {inlineMath: [["\\\\(", "\\\\)"]], displayMath: [["\\\\[", "\\\\]"]], processEscapes: false,
            processEnvironments: true, ignoreClass: ".*|", processClass: "arithmatex"},"""
_NOTEBOOK_MATH = """
  tex2jax: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
            processEscapes: true, processEnvironments: true},"""


def on_post_page(output, page, config, **kw):
    """Load the site's own MathJax on pages with equations: notebooks (whose template leaves an empty
    ``<script src="">`` when no MathJax URL is configured) and Markdown pages with arithmatex math."""
    from mkdocs.utils import get_relative_url

    notebook = "text/x-mathjax-config" in output
    if not notebook and 'class="arithmatex"' not in output:
        return output
    output = output.replace('<script src=""> </script>', "")
    url = get_relative_url(f"{MATHJAX_DIR}/MathJax.js", page.url)
    tag = _MATH_CONFIG % (_NOTEBOOK_MATH if notebook else _MARKDOWN_MATH, url, MATHJAX_CONFIG)
    return output.replace("</head>", tag + "</head>", 1)


def on_post_build(config, **kw):
    src = mathjax_source()
    dst = Path(config["site_dir"]) / MATHJAX_DIR
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("SVG", "a11y", "unpacked", "*.py", "__pycache__"))


def design_page():
    """The figures of merit of the three presets (``mpisim design bruker-Nd``)."""
    from mpisim.design import figures_of_merit, readable

    names = ["bruker-1d", "bruker-2d", "bruker-3d"]
    figs = {n: figures_of_merit(n) for n in names}
    keys = list(dict.fromkeys(k for n in names for k in figs[n]))
    lines = []
    for k in keys:
        ref = next(figs[n][k] for n in names if k in figs[n])
        cells = " | ".join(readable(figs[n][k])[0] if k in figs[n] else "–" for n in names)
        lines.append(f"| {ref.label} | {readable(ref)[1]} | {cells} |")
    return ("# Figures of merit of the presets (generated by the docs build)\n\n"
            "Written by `docs/hooks.py` with `mpisim.design.figures_of_merit` (what `mpisim design bruker-2d` "
            "prints), 25 nm magnetite tracer, one averaged cycle, 10 pg iron per cell, SAR for a 0.15 m "
            "cylinder. Methods: [Design a scanner](../howto-design.md).\n\n"
            f"| figure | unit | {' | '.join(names)} |\n|---|---|{'---|' * len(names)}\n" + "\n".join(lines) + "\n")


def detection_page(path):
    res = json.loads(path.read_text())
    rows = "\n".join(f"| {r['cells']:.3g} | {r['iron_true_ng']:.3g} | "
                     f"{sum(r['iron_roi_ng']) / len(r['iron_roi_ng']):.4g} | "
                     f"{r['iron_95_ng'][0][0]:.4g} .. {r['iron_95_ng'][0][1]:.4g} | {'yes' if r['detected'] else 'no'} |"
                     for r in res["rows"])
    lim = res["detection_limit_cells"]
    seeds_line = (f"≈ {lim:.3g} cells ({res['detection_limit_iron_ng']:.3g} ng Fe)" if lim is not None else
                  "not reached in the series")
    return f"""# Detection limit (generated by the docs build)

This page is written by `docs/hooks.py` from `examples/08_detection_limit.py`
(the same study as `mpisim titrate --cells 1e2..1e6 --iron-per-cell 10pg --png detection.png`).

**Scanner `{res['scanner']}`, {res['core_diameter_m'] * 1e9:g} nm magnetite tracer, {res['iron_per_cell_pg']:g} pg Fe
per cell, {res['averages']} averaged acquisitions per frame, realistic noise: detection limit (Currie, image domain,
α = β = 5 %) L_D = {res['L_D_ng']:.3g} ng Fe ≈ {res['L_D_cells']:.3g} labelled cells in the ROI
({res['roi']}; critical level L_C = {res['L_C_ng']:.3g} ng).** The data-domain limit of the same scanner, tracer and
averages (a matched filter that knows the position, what `mpisim design` reports) is {res['L_D_data_ng']:.3g} ng:
a reconstruction cannot beat it ([Quantify cells](../howto-cells.md)).

The older criterion, kept as information — {res['criterion']} — gives {seeds_line}. Blank scans ({res['blank_seeds']} noise seeds) give
{res['blank_iron_ng_mean']:.3g} ± {res['blank_iron_ng_sd']:.2g} ng in the 8 mm ROI (the default reconstruction has
no positivity constraint, so a blank scatters around zero); the threshold is {res['threshold_ng']:.3g} ng. Each
cell number was scanned with {res['seeds']} noise seeds, reconstructed with mpisim's defaults; the 95 % interval
of the first seed's scan (measurement noise only) is listed beside the mean.

![detection limit](../figures/detection_limit.png)

| cells | iron / ng | mean ROI iron / ng | 95 % interval (seed 0) / ng | detected |
|---|---|---|---|---|
{rows}

For comparison, the literature reports about 4000 MSCs at 1.5 min per pellet (Sehl & Foster, ISMRM 2021) and
5 ng Fe in vitro on a dedicated scanner (Graeser et al. 2017). mpisim's "realistic" noise level is a documented
default of the preset, not a measurement of a particular scanner.
"""


def api_modules():
    """Every importable module of mpisim that declares ``__all__``, except the command line (mpisim.cli*);
    a module that needs an optional package that is not installed (cupy) is left out."""
    import mpisim

    names = ["mpisim"] + sorted(m.name for m in pkgutil.walk_packages(mpisim.__path__, "mpisim.")
                                if not m.name.startswith("mpisim.cli") and not m.name.rsplit(".", 1)[-1].startswith("_"))
    mods = []
    for name in names:
        if name == "mpisim.course" or name.endswith("__main__"):
            continue                            # the course's checks (documented with the course); python -m
        try:
            mod = importlib.import_module(name)
        except ImportError as e:
            if getattr(e, "name", None) and not e.name.startswith("mpisim"):
                continue                        # an optional dependency (cupy) missing here
            raise
        if isinstance(getattr(mod, "__all__", None), (list, tuple)):
            mods.append(mod)
    return mods


def api_page():
    mods = api_modules()
    anchors = {}                                # name and dotted name → heading id, for the roles' links
    for mod in mods:
        for n in mod.__all__:
            obj = getattr(mod, n, None)
            if obj is not None and getattr(obj, "__module__", None) == mod.__name__:
                anchors[f"{mod.__name__}.{n}"] = anchors.setdefault(n, _anchor(mod.__name__, n))
                anchors[f"{mod.__name__}.{n}"] = _anchor(mod.__name__, n)
    out = ["# API reference\n",
           "Generated from the docstrings of every module of mpisim that declares `__all__` (the command line "
           "aside), listing exactly the names in `__all__`; units are named in each docstring. The "
           "[API summary](../api.md) says which of these to start with.\n"]
    out.append("Modules: " + ", ".join(f"[`{m.__name__}`](#{_anchor(m.__name__)})" for m in mods) + "\n")
    for mod in mods:
        out.append(f"\n## `{mod.__name__}` {{#{_anchor(mod.__name__)}}}\n\n{_doc(mod, anchors)}\n")
        again = []
        for n in mod.__all__:
            obj = getattr(mod, n, None)
            if obj is None:
                continue
            home = getattr(obj, "__module__", None)
            if home != mod.__name__ and (inspect.isclass(obj) or inspect.isfunction(obj)):
                ref = anchors.get(f"{home}.{n}")
                again.append(f"[`{n}`](#{ref})" if ref else f"`{n}` (`{home}`)")
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj):
                out.append(f"### `{n}{_signature(obj)}` {{#{_anchor(mod.__name__, n)}}}\n\n{_doc(obj, anchors)}\n")
                if inspect.isclass(obj):
                    out.extend(_members(obj, n, anchors))
            elif isinstance(obj, types.ModuleType):
                continue
            else:
                out.append(f"### `{n}` {{#{_anchor(mod.__name__, n)}}}\n\n`{n} = {_short(obj)}`\n")
        if again:
            out.append("Also here: " + ", ".join(again) + ".\n")
    return "\n".join(out)


def _anchor(*parts):
    return re.sub(r"[^a-z0-9]+", "-", ".".join(parts).lower()).strip("-")


def _short(value, limit=60):
    """A default value as a reader wants it: a module or function by its name, never by a file path."""
    if isinstance(value, types.ModuleType):
        return value.__name__
    if inspect.isfunction(value) or inspect.isclass(value) or inspect.isbuiltin(value):
        return getattr(value, "__qualname__", value.__name__)
    text = repr(value)
    text = re.sub(r"<(?:function|built-in function|bound method) ([\w.<>]+) at 0x[0-9a-f]+>", r"\1", text)
    text = re.sub(r"<([\w.]+) object at 0x[0-9a-f]+>", r"\1()", text).replace("<lambda>", "lambda")
    return text if len(text) <= limit else text[:limit - 1] + "…"


class _Shown:
    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def _signature(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    params = [p.replace(default=_Shown(_short(p.default))) if p.default is not p.empty else p
              for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=sig.empty))


def _members(cls, name, anchors):
    lines = []
    for m, f in sorted(vars(cls).items()):
        if m.startswith("_") or not (inspect.isfunction(f) or isinstance(f, (property, classmethod, staticmethod))):
            continue
        fn = f.__func__ if isinstance(f, (classmethod, staticmethod)) else (f.fget if isinstance(f, property) else f)
        d = _doc(fn, anchors)
        if not d:
            continue
        sig = "" if isinstance(f, property) else _signature(fn).replace("(self, ", "(").replace("(self)", "()")
        first = d.split("\n\n", 1)[0].replace("\n", " ")
        lines.append(f"- **`{name}.{m}{sig}`** — {first}\n")
    return ["".join(lines)] if lines else []


_SECTIONS = {"Parameters", "Returns", "Yields", "Raises", "Warns", "Attributes", "Other Parameters",
             "Receives", "Examples", "Example", "Notes", "See Also", "References", "Warnings"}
_LISTS = {"Parameters", "Returns", "Yields", "Raises", "Warns", "Attributes", "Other Parameters", "Receives"}
_ROLE = re.compile(r":(?:py:)?(meth|class|func|mod|attr|obj|data|exc|const):`~?([^`<]+?)(?:\s*<([^>]+)>)?`")


def _roles(text, anchors):
    """Sphinx roles (:class:`Tracer`, :func:`~mpisim.x.f`) → code, linked when the name is documented here."""
    def sub(m):
        target = (m.group(3) or m.group(2)).strip()
        shown = m.group(2).strip().rsplit(".", 1)[-1] if m.group(2).startswith("~") else m.group(2).strip()
        key = target.rstrip("()")
        ref = anchors.get(key) or anchors.get(key.rsplit(".", 1)[-1])
        return f"[`{shown}`](#{ref})" if ref else f"`{shown}`"
    text = _ROLE.sub(sub, text)
    return re.sub(r"(?<![`\w])``([^`]+)``(?!`)", r"`\1`", text)


def _escape(text):
    """Angle brackets outside code spans as entities, so that a docstring's <...> is shown."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(p if p.startswith("`") else p.replace("<", "&lt;") for p in parts)


def _doc(obj, anchors=None):
    """A numpydoc docstring as Markdown: the summary and text as paragraphs, Parameters/Returns/... as
    lists of names with their types, Examples as code, roles as code (links where documented here)."""
    lines = (inspect.getdoc(obj) or "").splitlines()
    anchors = anchors or {}
    blocks, title, body = [], None, []

    def flush():
        if title is None:
            blocks.append(_paragraphs(body, anchors))
        elif title in _LISTS:
            blocks.append(f"**{title}**\n\n" + _fields(body, anchors))
        elif title.startswith("Example"):
            code = "\n".join(ln for ln in body).strip("\n")
            blocks.append(f"**{title}**\n\n```python\n{code}\n```")
        else:
            blocks.append(f"**{title}**\n\n" + _paragraphs(body, anchors))

    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() in _SECTIONS and nxt.strip() and set(nxt.strip()) == {"-"}:
            flush()
            title, body = line.strip(), []
            i += 2
            continue
        body.append(line)
        i += 1
    flush()
    return "\n\n".join(b for b in blocks if b.strip())


def _paragraphs(lines, anchors):
    text = "\n".join(lines).strip("\n")
    out = []
    for para in re.split(r"\n\s*\n", text):
        if para.lstrip().startswith(">>>"):
            out.append("```python\n" + para.strip("\n") + "\n```")
        elif para.startswith(("    ", "\t")) or para.lstrip().startswith(("- ", "* ")):
            out.append(_escape(_roles(para, anchors)) if not para.startswith("    ") else
                       "```text\n" + inspect.cleandoc(para) + "\n```")
        else:
            out.append(_escape(_roles(para, anchors)))
    return "\n\n".join(out)


def _fields(lines, anchors):
    """numpydoc fields ``name : type`` with an indented description → a Markdown list."""
    items, cur = [], None
    for line in lines:
        if line.strip() and not line.startswith((" ", "\t")):
            name, sep, typ = line.partition(" : ")
            if sep and " " not in name.strip().replace(", ", ","):
                cur = [name.strip(), typ.strip(), []]
            elif cur is not None and not cur[0]:
                cur[1] += " " + line.strip()    # prose that goes on (a Returns section written as text)
                continue
            else:
                cur = ["", line.strip(), []]    # a Returns line that gives only a type or a sentence
            items.append(cur)
        elif cur is not None:
            cur[2].append(line.strip())
        elif line.strip():
            items.append(["", "", [line.strip()]])
    out = []
    for name, typ, desc in items:
        text = _escape(_roles(" ".join(d for d in desc if d), anchors))
        typ = _escape(_roles(typ, anchors))
        if name and typ and (len(typ) > 50 or typ.endswith(".")):
            text, typ = f"{typ} {text}".strip(), ""       # a sentence, not a type
        head = f"`{name}`" + (f" ({typ})" if typ else "") if name else typ
        out.append(f"- {head}{' — ' if head and text else ''}{text}")
    return "\n".join(out)
