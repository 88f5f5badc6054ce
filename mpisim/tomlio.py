"""Minimal TOML writing (reading uses the standard library's ``tomllib``).

Writes the subset mpisim needs: nested tables, arrays of tables, strings, booleans, numbers and
(nested) lists of numbers. Floats are written with ``repr`` so they round-trip exactly.
"""

import math
import tomllib

from .errors import MPISimError
from .io.atomic import check_input_file

__all__ = ["dumps", "loads", "load", "MAX_TOML_BYTES"]

MAX_TOML_BYTES = 16 * 2**20
"""The largest TOML file :func:`load` reads (bytes): a scanner or settings file is a few kB."""


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise MPISimError(f"cannot write non-finite number {v} to TOML")
        return repr(float(v))          # numpy floats are floats whose repr is "np.float64(...)"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if hasattr(v, "tolist"):
        return _value(v.tolist())
    raise MPISimError(f"cannot write {type(v).__name__} to TOML")


def dumps(data, _prefix=""):
    """Serialise a nested dict to a TOML string."""
    lines, tables = [], []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append((k, v, False))
        elif isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) for x in v):
            tables.append((k, v, True))
        else:
            lines.append(f"{k} = {_value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v, is_array in tables:
        name = f"{_prefix}{k}"
        if is_array:
            for item in v:
                out += f"\n[[{name}]]\n" + dumps(item, name + ".")
        else:
            out += f"\n[{name}]\n" + dumps(v, name + ".")
    return out


MAX_DEPTH = 32
"""Deepest nesting of tables and arrays accepted (a scanner file nests 3 levels)."""


def loads(text, source="TOML"):
    """Parse TOML text, turning syntax errors and nesting deeper than :data:`MAX_DEPTH` (which would
    exhaust the parser's recursion, or any code that walks the result) into a one-line
    :class:`MPISimError`."""
    try:
        out = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MPISimError(f"{source}: malformed TOML: {e}") from None
    except RecursionError:
        raise MPISimError(f"{source}: tables or arrays nested deeper than Python's parser can follow "
                          f"(at most {MAX_DEPTH} levels are used)") from None
    stack = [(out, 1)]
    while stack:                                  # iteratively: the check itself must not recurse
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MPISimError(f"{source}: tables or arrays nested deeper than {MAX_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return out


def load(path):
    """Read and parse a TOML file (clear error if missing or malformed)."""
    check_input_file(path)
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_TOML_BYTES + 1)
        if len(text) > MAX_TOML_BYTES:
            raise MPISimError(f"{path}: larger than {MAX_TOML_BYTES // 2**20} MiB: not a scanner or settings file")
        text = text.decode("utf-8")
    except FileNotFoundError:
        raise MPISimError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise MPISimError(f"{path}: cannot read: {e}") from None
    return loads(text, source=str(path))
