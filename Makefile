# The two README commands: `make demo` and `make test`. Both set themselves up, idempotently.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed
FMNIST_DEB := /usr/share/datasets/fashion-mnist
FMNIST_RAW := data/FashionMNIST/raw/train-images-idx3-ubyte
# Where phasediag looks for datasets when no --data_dir is given (docs/cli.md): here, the clone's data/ (`make data`).
export PHASEDIAG_DATA ?= $(CURDIR)/data
DEMO  := out/demo
# The demo's tracking store and Optuna storage live in out/demo, apart from your own mlruns.db.
DEMO_ENV := MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/$(DEMO)/mlruns.db
# One initialisation scanned like the paper (every 0.5 in log2 c, sharpness at every step) for Figs. 1-2 style trajectories.
DEMO_TRAJECTORIES := --experiment demo_trajectories --arch fcn --depth 4 --width 512 --dataset fashion_mnist \
	--subset 4096 --measure_examples 1024 --seed 0 --mode grid --resolution 0.5 --x_min 0 --x_max 5
# c_crit (Sec. 3) on the uv architecture: cheap, and the paper's own check (App. B.2: c_crit = 2).
DEMO_SATURATION := --experiment demo_saturation --arch uv --depth 2 --width 512 --dataset uv --batch_size 0 \
	--seeds 0 1 2 3 4 5 6 7 --tau_fixed 100

.PHONY: setup data services test test-fast demo gallery bench gpu-check clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Debian packages, installed only where missing: the offline Fashion-MNIST, PostgreSQL for the multi-machine
# tests, Chromium for the browser test, SLURM and MUNGE for the SLURM launcher's tests (a private cluster).
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
	$(call apt_install,test -x /usr/sbin/slurmctld -a -x /usr/sbin/munged,slurm-wlm munge,SLURM and MUNGE for the SLURM launcher's tests)

# Two pytest workers, one thread each: half the suite waits on subprocesses, servers and grace periods, and on two
# cores two OpenMP threads per process would fight over the cores (see tests/test_hessian.py).
TEST_PARALLEL := OMP_NUM_THREADS=1 $(PY) -m pytest -n 2
test: setup services
	$(TEST_PARALLEL) -q -ra --durations=15

test-fast: setup
	$(TEST_PARALLEL) -q -m "not slow"

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

# `make gallery`: every figure that fits 2 CPU cores, at the reduced sizes stated in the README, into docs/figures/
# and docs/claims.md. Its own tracking store in out/gallery; each step is a file target, so a re-run redoes nothing
# (the sweeps resume their studies) and `rm -r out/gallery` starts over.
GALLERY := out/gallery
GALLERY_ENV := MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/$(GALLERY)/mlruns.db $(CURDIR)/$(BIN)/phasediag
GALLERY_DATA := --data_dir $(CURDIR)/data
# Fig. 1: one FCN on 1024 Fashion-MNIST examples, B = 128 (8 steps per epoch), 1000 epochs (the paper: CNN on CIFAR-10).
GALLERY_LONGRUN := --experiment gallery_longrun --arch fcn --depth 4 --width 128 --dataset fashion_mnist --subset 1024 \
	--batch_size 128 --measure_examples 512 --seed 0 --cs 2 8 --epochs 1000
# Fig. 5: the sweeps' networks on the same data, c in [1, 10.6], c tau = 200, sharpness over tau +/- 2, 3 seeds: FCN
# d = 4 at widths 64 and 256 (overlaid), and d = 8 at w = 256; for the claims also d = 4 at w = 512 and d = 2 at
# w = 256 (where the chi' peak is sharp), so that c_crit meets c_loss at three widths and three depths.
GALLERY_SATURATION_SETUP := --experiment gallery_saturation --arch fcn --dataset fashion_mnist --subset 4096 \
	--measure_examples 1024 --batch_size 512 --seeds 0 1 2 --x_min 0 --x_max 3.4 --tau_halfwidth 2
GALLERY_SATURATION := $(GALLERY_SATURATION_SETUP) --depth 4 --widths 64 256
GALLERY_SATURATION_DEPTH := $(GALLERY_SATURATION_SETUP) --depth 8 --width 256
GALLERY_SATURATION_WIDE := $(GALLERY_SATURATION_SETUP) --depth 4 --width 512
GALLERY_SATURATION_SHALLOW := $(GALLERY_SATURATION_SETUP) --depth 2 --width 256
GALLERY_FIGURES := fig01_regimes.png:longrun/longrun.png fig02_trajectories.png:trajectories/trajectories.png \
	fig03_phase_diagram_width.png:width/phase_diagram_width.png fig03_phase_diagram_depth.png:depth/phase_diagram_depth.png \
	fig04_relations_width.png:width/relations_width.png fig05_saturation_widths.png:saturation/saturation_widths.png \
	fig07_uv_phase_diagrams.png:uv/uv_fig7_phase_diagrams.png fig08_uv_trajectories.png:uv/uv_fig8_trajectories.png \
	fig09_uv_trajectories.png:uv_figures/uv_fig9_trajectories.png fig10_uv_saturation.png:uv/uv_fig10_saturation.png \
	fig11_uv_first_step.png:uv/uv_fig11_first_step.png fig12_uv_relations.png:uv_figures/uv_fig12_relations.png

gallery: setup docs/claims.md $(foreach f,$(GALLERY_FIGURES),docs/figures/$(firstword $(subst :, ,$(f)))) gallery-future
	@echo "Gallery: docs/figures/ and docs/claims.md (step times in $(GALLERY)/times.txt)"

# The width and the depth sweep share one experiment (and their d = 4, w = 256 searches); each diagram draws the
# panel its variable varies in.
$(GALLERY)/width/phase_diagram_width.png: sweeps/gallery_fcn_width.yaml | $(STAMP)
	mkdir -p $(GALLERY)
	$(call gallery_time,sweep width,$(GALLERY_ENV) sweep $(CURDIR)/$< --workers 2 $(GALLERY_DATA) && $(GALLERY_ENV) diagram --experiment gallery_fcn --x width --out width)
$(GALLERY)/width/relations_width.png: $(GALLERY)/width/phase_diagram_width.png
$(GALLERY)/depth/phase_diagram_depth.png: sweeps/gallery_fcn_depth.yaml $(GALLERY)/width/phase_diagram_width.png | $(STAMP)
	mkdir -p $(GALLERY)
	$(call gallery_time,sweep depth,$(GALLERY_ENV) sweep $(CURDIR)/$< --workers 2 $(GALLERY_DATA) && $(GALLERY_ENV) diagram --experiment gallery_fcn --x depth --out depth)
$(GALLERY)/trajectories/trajectories.png: | $(STAMP)
	mkdir -p $(GALLERY)
	$(call gallery_time,trajectories,$(GALLERY_ENV) search $(subst demo_trajectories,gallery_trajectories,$(DEMO_TRAJECTORIES)) $(GALLERY_DATA) && $(GALLERY_ENV) trajectories --experiment gallery_trajectories --out trajectories_all && mkdir -p trajectories && cp trajectories_all/trajectories_*.png trajectories/trajectories.png)
$(GALLERY)/saturation/saturation_widths.png: | $(STAMP)
	mkdir -p $(GALLERY)
	$(call gallery_time,saturation,$(GALLERY_ENV) saturation_widths $(GALLERY_SATURATION) $(GALLERY_DATA) --out saturation && $(GALLERY_ENV) saturation $(GALLERY_SATURATION_DEPTH) $(GALLERY_DATA) --out saturation_depth)
$(GALLERY)/saturation_shallow/saturation.png: | $(STAMP)
	mkdir -p $(GALLERY)
	$(call gallery_time,saturation wide and shallow,$(GALLERY_ENV) saturation $(GALLERY_SATURATION_WIDE) $(GALLERY_DATA) --out saturation_wide && $(GALLERY_ENV) saturation $(GALLERY_SATURATION_SHALLOW) $(GALLERY_DATA) --out saturation_shallow)
$(GALLERY)/longrun/longrun.png: | $(STAMP)
	mkdir -p $(GALLERY)
	$(call gallery_time,longrun,$(GALLERY_ENV) longrun $(GALLERY_LONGRUN) $(GALLERY_DATA) --out longrun)
$(GALLERY)/uv/uv_fig7_phase_diagrams.png: | $(STAMP)
	mkdir -p $(GALLERY)
	$(call gallery_time,uv,$(GALLERY_ENV) uv --widths 2 4 8 16 32 64 128 256 512 --inits 500 --experiment gallery_uv --out uv)
$(GALLERY)/uv/uv_fig8_trajectories.png $(GALLERY)/uv/uv_fig10_saturation.png $(GALLERY)/uv/uv_fig11_first_step.png: $(GALLERY)/uv/uv_fig7_phase_diagrams.png
$(GALLERY)/uv_figures/uv_fig9_trajectories.png: | $(STAMP)
	mkdir -p $(GALLERY)
	$(call gallery_time,uv figures,$(GALLERY_ENV) uv_figures --widths 2 8 32 128 512 --inits 500 --experiment gallery_uv --out uv_figures)
$(GALLERY)/uv_figures/uv_fig12_relations.png: $(GALLERY)/uv_figures/uv_fig9_trajectories.png

# Beyond the paper (docs/optimizers.md): Adam's and momentum's phase diagrams against width (beside vanilla SGD's at the
# same size), the constants against the warmup length and against sigma_w^2; one target each (gallery-adam, ...), none
# of them in docs/claims.md.
FUTURE_FIGURES := sgd:gallery_future_sgd:width adam:gallery_future_adam:width momentum:gallery_future_momentum:width \
	warmup:gallery_future_warmup:warmup_steps \
	init-scale:gallery_future_init_scale:init_scale
.PHONY: gallery-future $(foreach f,$(FUTURE_FIGURES),gallery-$(word 1,$(subst :, ,$(f))))
gallery-future: $(foreach f,$(FUTURE_FIGURES),gallery-$(word 1,$(subst :, ,$(f))))
define future_figure
gallery-$(1): docs/figures/future_$(1).png
docs/figures/future_$(1).png: $(GALLERY)/$(1)/phase_diagram_$(3).png
	$(PY) -m phasediag.plots.gallery $$< $$@
$(GALLERY)/$(1)/phase_diagram_$(3).png: sweeps/$(2).yaml | $(STAMP)
	mkdir -p $(GALLERY)
	$$(call gallery_time,$(1),$(GALLERY_ENV) sweep $(CURDIR)/$$< --workers 2 $(GALLERY_DATA) && $(GALLERY_ENV) diagram --experiment $(2) --x $(3) --out $(1))
endef
$(foreach f,$(FUTURE_FIGURES),$(eval $(call future_figure,$(word 1,$(subst :, ,$(f))),$(word 2,$(subst :, ,$(f))),$(word 3,$(subst :, ,$(f))))))

# The claims on the width and depth sweeps (c_crit from the saturation runs of the same networks), each claim once.
docs/claims.md: $(GALLERY)/width/phase_diagram_width.png $(GALLERY)/depth/phase_diagram_depth.png $(GALLERY)/saturation/saturation_widths.png \
		$(GALLERY)/saturation_shallow/saturation.png
	$(call gallery_time,claims,$(GALLERY_ENV) claims --experiment gallery_fcn --saturation_experiment gallery_saturation --out claims >/dev/null)
	mkdir -p docs
	{ echo "# Claims checked by \`make gallery\`"; echo; echo "Generated from out/gallery (reduced sizes: see docs/gallery.md)."; \
	  echo; cat $(GALLERY)/claims/claims.md; } > $@

# A figure is copied into docs/figures/ under its paper number, under 250 KB (palette, then scaled down if needed).
define gallery_figure
docs/figures/$(1): $(GALLERY)/$(2)
	$(PY) -m phasediag.plots.gallery $$< $$@
endef
$(foreach f,$(GALLERY_FIGURES),$(eval $(call gallery_figure,$(word 1,$(subst :, ,$(f))),$(word 2,$(subst :, ,$(f))))))

# $(call gallery_time,name,commands): run them in $(GALLERY) (a subshell) and append their wall time to times.txt.
define gallery_time
	@start=$$(date +%s); echo "gallery: $(1)"; ( cd $(GALLERY) && $(2) ); status=$$?; \
	echo "$(1): $$(( $$(date +%s) - start )) s" >> $(GALLERY)/times.txt; exit $$status
endef

bench: setup
	$(PY) -m phasediag.bench

# One script for a GPU machine (< 8 min); without CUDA it says so in one line and exits 0.
gpu-check: setup
	@$(PY) -m phasediag.gpu_check

clean:
	rm -rf $(VENV) data out mlruns.db optuna.db mlruns mlartifacts
