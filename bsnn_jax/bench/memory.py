"""Memory as every benchmark measures it: XLA's buffer assignment of a compiled step (exact,
deterministic) and the process's peak resident memory (Linux, a rough cross-check)."""

from __future__ import annotations

import jax


def memory_record(compiled: jax.stages.Compiled) -> dict[str, int]:
    """XLA's buffer sizes of a compiled step and ``peak_bytes = argument + output + temp - alias``:
    the state and batch passed in, the outputs not written in place of donated inputs, and the
    one scratch buffer XLA:CPU allocates for all intermediates. (The stats' own
    ``peak_memory_in_bytes`` is not used: on XLA:CPU it reports only about the argument size.)"""
    stats = compiled.memory_analysis()
    parts = {
        "argument_bytes": stats.argument_size_in_bytes,
        "output_bytes": stats.output_size_in_bytes,
        "temp_bytes": stats.temp_size_in_bytes,
        "alias_bytes": stats.alias_size_in_bytes,
        "generated_code_bytes": stats.generated_code_size_in_bytes,
    }
    parts["peak_bytes"] = parts["argument_bytes"] + parts["output_bytes"] + parts["temp_bytes"] - parts["alias_bytes"]
    return parts


def proc_status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Resets the process's ``VmHWM`` to its current RSS (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class PeakRss:
    """The process's peak resident memory over a block of code, and its growth over the resident
    memory before it (``with PeakRss() as rss: ...; rss.peak_bytes, rss.growth_bytes``): both None
    where ``/proc`` cannot reset or report it (not Linux)."""

    def __enter__(self) -> PeakRss:
        # Reset first: the peak must be of the block, not of compiling or building before it.
        self._before = proc_status_kib("VmRSS") if reset_peak_rss() else None
        self.peak_bytes = self.growth_bytes = None
        return self

    def __exit__(self, *exc) -> None:
        peak = proc_status_kib("VmHWM")
        if peak is not None and self._before is not None:
            self.peak_bytes, self.growth_bytes = peak * 1024, (peak - self._before) * 1024
