"""Config files for ``bsnn train --config experiments/configs/NAME.py``; shared parts in ``common``."""
