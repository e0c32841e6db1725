# `make demo` and `make test` each set up everything they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FASHION_DIR := /usr/share/datasets/fashion-mnist
# One worker per core: 3 workers took 1009 s and 2 took 971 s on one tree, back to back.
PYTEST_WORKERS ?= 2

.PHONY: demo test lint test-slow test-interop bench bench-deps fashion-data docs clean

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
	$(BIN)/bsnn train --config demo --workdir runs/demo-$$(date +%Y%m%d-%H%M%S)

# ruff's lint (pyflakes, bugbear, import order, ...) and format check, configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) fashion-data lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=15

# Full-size models and long training runs, on request only.
test-slow: $(STAMP) fashion-data
	$(BIN)/python -m pytest -m slow -n $(PYTEST_WORKERS)

# Another framework reads our NIR export: CPU PyTorch, snnTorch and nirtorch, then a short
# vanilla-BSNN demo run exported and run by snnTorch's import_from_nir (agreement >= 99%).
INTEROP_STAMP := $(VENV)/.interop-installed
$(INTEROP_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet "torch==2.13.*" --extra-index-url https://download.pytorch.org/whl/cpu
	$(BIN)/python -m pip install --quiet -e ".[interop]"
	touch $(INTEROP_STAMP)

test-interop: $(INTEROP_STAMP) fashion-data
	$(BIN)/python -m pytest -m interop -s tests/export/test_nir_interop.py

# The peers measured beside bsnn_jax: CPU PyTorch (a local wheel mirror works as well as the
# PyTorch index), snnTorch, and SpikingJelly without its torchvision requirement, which would
# replace the CPU torch by a CUDA build (its activation_based modules do not use torchvision).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet "torch==2.13.*" --extra-index-url https://download.pytorch.org/whl/cpu
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m pip install --quiet --no-deps "spikingjelly==0.0.0.0.14"
	touch $(BENCH_STAMP)

bench-deps: $(BENCH_STAMP)

# Speed and memory, side by side with the peers (about 18 minutes on 2 CPU cores; `--all` adds
# ResNet-19 and VGGSNN). Writes benchmarks/results/bench.{json,md}.
bench: $(BENCH_STAMP)
	$(BIN)/bsnn bench

# The API reference from the docstrings (pdoc, equations through MathJax) in docs/_build;
# fails if pdoc warns about anything.
docs: $(STAMP)
	$(BIN)/python docs/build.py docs/_build

clean:
	rm -rf $(VENV) .pytest_cache docs/_build
