"""What XLA compiled, counted from an optimised HLO module's text (``Compiled.as_text()``)."""

from __future__ import annotations

import math
import re

_FUSION = re.compile(r"^\s*%\S+ = \(?\w+\[([\d,]*)\][^=]*? fusion\(.*?calls=%([\w.\-]+)")


def kernel_sizes(hlo_text: str) -> dict[str, int]:
    """Instructions in each non-entry computation (the fused kernels), by name.

    Their sum measures the work XLA compiled: a value it duplicates into several kernels counts
    once per copy.
    """
    sizes, name = {}, None
    for line in hlo_text.splitlines():
        if line.endswith("{") and not line.startswith(("ENTRY", "HloModule", " ")):
            name = line.split()[0].lstrip("%")
            sizes[name] = 0
        elif line == "}":
            name = None
        elif name is not None and " = " in line:
            sizes[name] += 1
    return sizes


def elementwise_work(hlo_text: str) -> int:
    """Sum over the fusions XLA launches of (instructions in the kernel) x (elements of its first
    output): the work of a loop fusion, which evaluates its kernel once per output element. A
    per-channel value XLA recomputes inside every element's evaluation counts once per element."""
    sizes = kernel_sizes(hlo_text)
    entry = hlo_text[hlo_text.index("\nENTRY") :]
    work = 0
    for line in entry.splitlines():
        match = _FUSION.match(line)
        if match:
            dims, kernel = match.groups()
            work += sizes.get(kernel, 0) * math.prod(int(d) for d in dims.split(",") if d)
    return work
