# `make demo` and `make test` each set up everything they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FASHION_DIR := /usr/share/datasets/fashion-mnist
PYTEST_WORKERS ?= 2

.PHONY: demo test test-slow fashion-data clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# The built-in dataset: Debian/Ubuntu ship the original Fashion-MNIST IDX files.
fashion-data:
	@if [ -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  echo "Fashion-MNIST is not in $(FASHION_DIR): run 'sudo apt-get install dataset-fashion-mnist'," \
	       "or put the 4 original *-ubyte.gz files in a directory and pass it as the dataset's data_dir."; \
	fi

# A real AGMM-BSNN training run on Fashion-MNIST (about 3 minutes on 2 CPU cores), in a new
# run directory each time so that no earlier run is overwritten.
demo: $(STAMP) fashion-data
	$(BIN)/bsnn train --config experiments/configs/demo.py --workdir runs/demo-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP) fashion-data
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=15

# Full-size models and long training runs, on request only.
test-slow: $(STAMP) fashion-data
	$(BIN)/python -m pytest -m slow -n $(PYTEST_WORKERS)

clean:
	rm -rf $(VENV) .pytest_cache
