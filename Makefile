# The two README commands: `make demo` and `make test`. Both set themselves up, idempotently.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FMNIST_DEB := /usr/share/datasets/fashion-mnist
FMNIST_RAW := data/FashionMNIST/raw/train-images-idx3-ubyte

.PHONY: setup data services test test-fast demo bench clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Real Fashion-MNIST, offline, from Debian's package; gunzipped where torchvision looks.
data: $(FMNIST_RAW)
$(FMNIST_RAW): | $(STAMP)
	@if [ ! -d $(FMNIST_DEB) ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null; \
	  else \
	    echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist', or copy the four IDX files (gunzipped) into data/FashionMNIST/raw/"; exit 1; \
	  fi; \
	fi
	$(VENV)/bin/phasediag data --data_dir data

test: setup
	$(PY) -m pytest -q -ra

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	$(VENV)/bin/phasediag run --arch fcn --depth 4 --width 256 --dataset fashion_mnist --c 2 --seed 0 --experiment demo

bench: setup
	$(PY) -m phasediag.bench

clean:
	rm -rf $(VENV) data out mlruns.db optuna.db mlruns mlartifacts
