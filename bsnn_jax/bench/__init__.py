"""Speed and memory benchmarks: ``bsnn bench`` (``suite``), one process per workload (``worker``)."""
