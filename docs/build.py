"""Builds the API reference from the docstrings with pdoc (LaTeX math rendered by MathJax).

    python docs/build.py [OUT]      # default docs/_build; `make docs` runs it

Exits with status 1, listing them, if pdoc warned about anything (a module that fails to import,
a broken reference or annotation), so the tests can check that the reference builds cleanly.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pdoc
import pdoc.render

# pdoc cannot resolve optax's recursive alias ArrayTree (optax.Params, optax.Updates) in
# annotations: a limitation of pdoc with optax, not a problem of these docs; the type still shows.
KNOWN = ("Import of ArrayTree failed",)


def build(out: Path) -> list[str]:
    """Writes the HTML reference of ``bsnn_jax`` into ``out``; returns pdoc's warnings."""
    pdoc.render.configure(docformat="google", math=True, search=True, show_source=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc("bsnn_jax", output_directory=out)
    return [str(w.message) for w in caught if not any(k in str(w.message) for k in KNOWN)]


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "_build")
    problems = build(out)
    for message in problems:
        print(f"warning: {message}", file=sys.stderr)
    print(f"API reference in {out / 'index.html'}" + (f"; {len(problems)} warning(s)" if problems else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
