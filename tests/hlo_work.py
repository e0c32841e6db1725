"""What XLA compiled, counted from an optimised HLO module's text (``Compiled.as_text()``)."""

from __future__ import annotations

import math
import re

_FUSION = re.compile(r"^\s*%\S+ = \(?\w+\[([\d,]*)\][^=]*? fusion\(.*?calls=%([\w.\-]+)")


_INSTRUCTION = re.compile(r"^\s*(ROOT )?%([\w.\-]+) = (?:\([^=]*?\)|\S+) ([\w\-]+)\(([^)]*)\)")


def kernel_sizes(hlo_text: str) -> dict[str, int]:
    """Instructions each non-entry computation (a fused kernel) evaluates per output element, by name.

    Their sum measures the work XLA compiled: a value it duplicates into several kernels counts
    once per copy. A ``concatenate`` evaluates one of its operands per element (a scan's stacked
    outputs are one): it counts its largest operand's instructions, not all of them, so stacking
    T steps' outputs adds nothing that grows with T while a kernel recomputing a longer chain at
    later steps still does.
    """
    kernels, name = {}, None
    for line in hlo_text.splitlines():
        if line.endswith("{") and not line.startswith(("ENTRY", "HloModule", " ")):
            name = line.split()[0].lstrip("%")
            kernels[name] = ({}, [])
        elif line == "}":
            name = None
        elif name is not None and (match := _INSTRUCTION.match(line)):
            root, instruction, opcode, operands = match.groups()
            kernels[name][0][instruction] = (opcode, re.findall(r"%([\w.\-]+)", operands))
            if root:
                kernels[name][1].append(instruction)
    return {name: len(_evaluated(graph, roots)) for name, (graph, roots) in kernels.items()}


def _evaluated(graph: dict[str, tuple[str, list[str]]], roots: list[str]) -> set[str]:
    """The instructions evaluated for one output element of the kernel ``graph`` (in the HLO
    text's order, which defines every operand before its use: no recursion on long chains)."""
    cones: dict[str, frozenset[str]] = {}
    for instruction, (opcode, operands) in graph.items():
        parts = [cones[o] for o in operands if o in cones]
        if opcode == "concatenate" and parts:
            parts = [max(parts, key=len)]
        cones[instruction] = frozenset({instruction}).union(*parts)
    return set().union(*(cones[r] for r in roots))


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
