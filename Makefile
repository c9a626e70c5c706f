# The two README commands: `make demo` and `make test`. Both set themselves up, idempotently.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed
FMNIST_DEB := /usr/share/datasets/fashion-mnist
FMNIST_RAW := data/FashionMNIST/raw/train-images-idx3-ubyte
DEMO  := out/demo
# The demo's tracking store and Optuna storage live in out/demo, apart from your own mlruns.db.
DEMO_ENV := MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/$(DEMO)/mlruns.db
# One initialisation scanned like the paper (every 0.5 in log2 c, sharpness at every step) for Figs. 1-2 style trajectories.
DEMO_TRAJECTORIES := --experiment demo_trajectories --arch fcn --depth 4 --width 512 --dataset fashion_mnist \
	--subset 4096 --measure_examples 1024 --seed 0 --mode grid --resolution 0.5 --x_min 0 --x_max 5
# c_crit (Sec. 3) on the uv architecture: cheap, and the paper's own check (App. B.2: c_crit = 2).
DEMO_SATURATION := --experiment demo_saturation --arch uv --depth 2 --width 512 --dataset uv --batch_size 0 \
	--seeds 0 1 2 3 4 5 6 7 --tau_fixed 100

.PHONY: setup data services test test-fast demo bench gpu-check clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Debian packages, installed only where missing: the offline Fashion-MNIST, PostgreSQL for the multi-machine
# tests, Chromium for the browser test.
APT := $(if $(filter 0,$(shell id -u)),,sudo) apt-get
define apt_install
	@if ! $(1); then \
	  if command -v apt-get >/dev/null; then \
	    ($(APT) update -qq && $(APT) install -y -qq $(2)) >/dev/null || { echo "could not install $(2): install it by hand"; exit 1; }; \
	  else echo "$(2) is missing and apt-get is not available: install it by hand ($(3))"; exit 1; fi; \
	fi
endef

data: $(FMNIST_RAW)
$(FMNIST_RAW): | $(STAMP)
	$(call apt_install,test -d $(FMNIST_DEB),dataset-fashion-mnist,or copy the four gunzipped IDX files into data/FashionMNIST/raw/)
	$(BIN)/phasediag data --data_dir data

services:
	$(call apt_install,test -x /usr/lib/postgresql/15/bin/initdb,postgresql-15,PostgreSQL 15 server binaries)
	$(call apt_install,command -v chromium >/dev/null,chromium,headless Chromium)

test: setup services
	$(PY) -m pytest -q -ra

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	mkdir -p $(DEMO)
	cd $(DEMO) && $(DEMO_ENV) $(CURDIR)/$(BIN)/phasediag sweep $(CURDIR)/sweeps/demo.yaml --workers 2 --data_dir $(CURDIR)/data
	cd $(DEMO) && $(DEMO_ENV) $(CURDIR)/$(BIN)/phasediag diagram --experiment demo --out diagram
	cd $(DEMO) && $(DEMO_ENV) $(CURDIR)/$(BIN)/phasediag search $(DEMO_TRAJECTORIES) --data_dir $(CURDIR)/data
	cd $(DEMO) && $(DEMO_ENV) $(CURDIR)/$(BIN)/phasediag trajectories --experiment demo_trajectories --out trajectories
	cd $(DEMO) && $(DEMO_ENV) $(CURDIR)/$(BIN)/phasediag saturation $(DEMO_SATURATION) --out saturation
	cd $(DEMO) && $(DEMO_ENV) $(CURDIR)/$(BIN)/phasediag claims --experiment demo --saturation_experiment demo_saturation --out claims
	cd $(DEMO) && $(DEMO_ENV) $(CURDIR)/$(BIN)/phasediag uv --widths 2 4 8 16 32 64 128 256 512 --inits 500 --out uv
	@echo; echo "Figures:"; find $(DEMO) -path '*/mlruns' -prune -o -name '*.png' -print | sort | sed 's/^/  /'
	@echo "Claims: $(DEMO)/claims/claims.md"
	@echo "Browse the runs:  $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/$(DEMO)/mlruns.db"

bench: setup
	$(PY) -m phasediag.bench

# One script for a GPU machine (< 8 min); without CUDA it says so in one line and exits 0.
gpu-check: setup
	@$(PY) -m phasediag.gpu_check

clean:
	rm -rf $(VENV) data out mlruns.db optuna.db mlruns mlartifacts
