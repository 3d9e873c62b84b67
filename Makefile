# Everything a new user runs; each target sets up what it needs first. `make` or `make help`
# lists them. Times are on a 2-core machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: help setup digits data train lint format test test-all study article docs bench gpu-check cluster cluster-stop clean
.DEFAULT_GOAL := help

help:
	@echo "make targets (times on a 2-core machine; the first one also sets up .venv, 1-2 min):"
	@echo "  make train          one run of the reference study, scaling=max, 5 epochs   ~25 s"
	@echo "  make train ARGS=... the same with any Hydra overrides, e.g. ARGS=\"scaling=none\""
	@echo "  make test           lint, then the test suite (real data, not the slow tests)   ~8 min"
	@echo "  make test-all       lint, then every test, the slow 5-epoch study included    ~12 min"
	@echo "  make lint           ruff check and format check, mypy (its first run ~40 s)  ~2 s"
	@echo "  make format         ruff format and fixes, in place                          ~1 s"
	@echo "  make setup          the virtual environment .venv with the pinned packages   ~2 min"
	@echo "  make digits         scikit-learn, for data=digits and its tests (make docs installs it) ~30 s"
	@echo "  make data           find, check and cache Fashion-MNIST (Debian copy, download) ~5 s"
	@echo "  make article        the article's experiment: none, max x 3 seeds, all 60k    ~1.5 min"
	@echo "  make study          every scaling mode x 3 seeds, 2 jobs side by side          ~3.5 min"
	@echo "  make docs           every table and figure in docs/, 2 jobs at a time        ~2 h"
	@echo "  make bench          the benchmark: plain loops, a sweep against its limit, cost curve ~25 min"
	@echo "                      (ARGS=\"--study-sweep full\": the whole study's sweep, +8 min; docs/bench/)"
	@echo "  make gpu-check      on a CUDA GPU machine: runs, evaluate, bench, tests on it  ~7 min"
	@echo "  make cluster        a one-node SLURM cluster here (root), for +launcher=slurm ~10 s"
	@echo "                      (first: installs slurm-wlm and munge, ~1 min; make test: +2 min)"
	@echo "  make cluster-stop   stop it again                                            ~1 s"
	@echo "  make clean          remove runs and sweeps (lightning_logs/runs, multirun)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# data=digits reads scikit-learn's copy: an extra, not in setup, because scikit-learn brings scipy,
# which torchmetrics (imported by Lightning) then imports in every run, digits or not: 0.7 s each
$(VENV)/.digits: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[digits]'
	touch $@

digits: $(VENV)/.digits

# Find the data (data folder, Debian copy, download); offline and root: install the Debian copy.
data: setup
	@$(PY) -m fmnist_scaling.data.sources data 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing the Debian package dataset-fashion-mnist"; \
	    apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }; \
	  fi; \
	  $(PY) -m fmnist_scaling.data.sources data; }

train: data
	$(PY) -m fmnist_scaling.train $(or $(ARGS),scaling=max)

# ruff: the linter and the formatter's check (pyproject.toml [tool.ruff]); `make format` rewrites;
# then mypy on fmnist_scaling and hydra_plugins (pyproject.toml [tool.mypy])
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# tests side by side, one per core (each with one torch thread); a test module stays on one worker
TEST_ARGS ?= -n auto --dist loadscope
test: data lint
	$(PY) -m pytest -m "not slow" $(TEST_ARGS)

test-all: data lint
	$(PY) -m pytest $(TEST_ARGS)

# The full study (6 modes x 3 seeds) and the article's experiment (none, max x 3 seeds), jobs side
# by side, one torch thread each (1.6x faster than one after another on 2 cores, the same numbers);
# another launcher: LAUNCHER=+launcher=slurm, or LAUNCHER= for Hydra's basic one.
LAUNCHER ?= +launcher=parallel
study: data
	$(PY) -m fmnist_scaling.train -m $(LAUNCHER) $(ARGS)

article: data
	$(PY) -m fmnist_scaling.train -m +experiment=article $(LAUNCHER) $(ARGS)

# The README's tables and figures: the article's experiment, the 6-mode x 3-seed study, the lr
# grid, the scale law (an input gain four ways), the architectures (MLP, input BatchNorm, CNN, He
# init), the threshold table, the overlay at gains that are not powers of two, the article's
# sigmoid network, the training speed, the study and threshold on the 8 x 8 digits, the threshold's
# variants (definitions, batch, offsets, whitened inputs, epochs) and the sharpness along an epoch,
# 2 jobs at a time (about 2 hours on 2 cores). Re-running skips
# finished jobs (the threshold table is measured again).
SWEEPS := lightning_logs/multirun
docs: data digits
	$(PY) -m fmnist_scaling.train -m +experiment=article +launcher=parallel hydra.sweep.dir=$(SWEEPS)/article
	$(PY) -m fmnist_scaling.train -m +launcher=parallel hydra.sweep.dir=$(SWEEPS)/study
	$(PY) -m fmnist_scaling.train -m +experiment=lr_grid +launcher=parallel hydra.sweep.dir=$(SWEEPS)/lr_grid
	$(PY) -m fmnist_scaling.train -m +experiment=scale_law +launcher=parallel hydra.sweep.dir=$(SWEEPS)/scale_law
	$(PY) -m fmnist_scaling.train -m +experiment=architectures +launcher=parallel hydra.sweep.dir=$(SWEEPS)/architectures
	$(PY) -m fmnist_scaling.tools.threshold --jobs 2 --out lightning_logs/threshold
	$(PY) -m fmnist_scaling.train -m +experiment=overlay +launcher=parallel hydra.sweep.dir=$(SWEEPS)/overlay
	$(PY) -m fmnist_scaling.train -m +experiment=sigmoid +launcher=parallel hydra.sweep.dir=$(SWEEPS)/sigmoid
	$(PY) -m fmnist_scaling.train -m data=digits +launcher=parallel hydra.sweep.dir=$(SWEEPS)/digits_study
	$(PY) -m fmnist_scaling.tools.threshold --jobs 2 --out lightning_logs/threshold_digits data=digits
	$(PY) -m fmnist_scaling.tools.threshold --cases none max --jobs 2 --dead-limit 0.9 --out lightning_logs/threshold_dead90
	$(PY) -m fmnist_scaling.tools.threshold --cases none max --jobs 2 --dead-limit 1 --out lightning_logs/threshold_chance
	$(PY) -m fmnist_scaling.tools.threshold --cases none max --jobs 2 --out lightning_logs/threshold_batch128 data.batch_size=128
	for o in 0.5 1 3; do $(PY) -m fmnist_scaling.tools.threshold --cases max --out lightning_logs/threshold_offset_$$o scaling._target_=fmnist_scaling.data.scaling.Shifted +scaling.offset=$$o; done
	$(PY) -m fmnist_scaling.tools.threshold --cases max --out lightning_logs/threshold_whitened scaling._target_=fmnist_scaling.data.scaling.Whitened
	for e in 2 5; do $(PY) -m fmnist_scaling.tools.threshold --cases none max --jobs 2 --epochs $$e --out lightning_logs/threshold_epochs$$e; done
	$(PY) -m fmnist_scaling.tools.threshold --jobs 2 --loss-limit 2.303 --out lightning_logs/threshold_loss
	$(PY) -m fmnist_scaling.tools.threshold --cases max --loss-limit 2.303 --out lightning_logs/threshold_loss_whitened scaling._target_=fmnist_scaling.data.scaling.Whitened
	$(PY) -m fmnist_scaling.tools.threshold --cases max --loss-limit 2.303 --out lightning_logs/threshold_loss_offset_1 scaling._target_=fmnist_scaling.data.scaling.Shifted +scaling.offset=1
	$(PY) -m fmnist_scaling.tools.threshold --cases none max --jobs 2 --out lightning_logs/threshold_net_hidden250 'model.net.hidden=[250]'
	$(PY) -m fmnist_scaling.tools.threshold --cases none max --jobs 2 --out lightning_logs/threshold_net_hidden2000 'model.net.hidden=[2000]'
	$(PY) -m fmnist_scaling.tools.threshold --cases none max --jobs 2 --out lightning_logs/threshold_net_two_layers 'model.net.hidden=[1000,1000]'
	$(PY) -m fmnist_scaling.tools.threshold --cases none max --jobs 2 --out lightning_logs/threshold_net_mlp_he +arch=mlp_he
	$(PY) -m fmnist_scaling.tools.threshold --cases none max --jobs 2 --out lightning_logs/threshold_net_cnn +arch=cnn
	$(PY) -m fmnist_scaling.tools.threshold --cases none max --jobs 2 --out lightning_logs/threshold_net_mlp_bn +arch=mlp_bn
	{ echo "<!-- generated by make docs: the threshold on networks other than the article's MLP (prediction: threshold_networks_prediction.md) -->"; echo; for n in hidden250 hidden2000 two_layers mlp_he cnn mlp_bn; do echo "## $$n (lightning_logs/threshold_net_$$n; the command: Makefile, docs)"; echo; cat lightning_logs/threshold_net_$$n/threshold.md; echo; done; } > docs/threshold_networks.md
	$(PY) -m fmnist_scaling.tools.sharpness --cases none --lrs 0.00316 0.00237 --out lightning_logs/sharpness_none
	$(PY) -m fmnist_scaling.tools.sharpness --cases max --lrs 0.562 0.422 --out lightning_logs/sharpness_max
	$(PY) -m fmnist_scaling.tools.sharpness --cases standard --lrs 1 0.75 --out lightning_logs/sharpness_standard
	$(PY) -m fmnist_scaling.tools.sharpness --cases max --lrs 0.0422 0.0316 --out lightning_logs/sharpness_offset_1 scaling._target_=fmnist_scaling.data.scaling.Shifted +scaling.offset=1
	$(PY) -m fmnist_scaling.tools.sharpness --cases max --lrs 2.37 1.78 --out lightning_logs/sharpness_whitened scaling._target_=fmnist_scaling.data.scaling.Whitened
	{ echo "<!-- generated by make docs: the threshold's variants, one table per run -->"; echo; for d in dead90 chance batch128 offset_0.5 offset_1 offset_3 whitened epochs2 epochs5 loss loss_whitened loss_offset_1; do echo "## threshold_$$d (lightning_logs/threshold_$$d; the command: Makefile, docs)"; echo; cat lightning_logs/threshold_$$d/threshold.md; echo; done; } > docs/threshold_variants.md
	{ echo "<!-- generated by make docs: the sharpness along one epoch (seed 0), per case -->"; echo; for c in none max standard offset_1 whitened; do echo "## $$c"; echo; cat lightning_logs/sharpness_$$c/sharpness.md; echo; done; } > docs/sharpness_trajectories.md
	$(PY) -m fmnist_scaling.tools.train_speed $(SWEEPS)/article > docs/article_speed.md
	$(PY) -m fmnist_scaling.tools.train_speed $(SWEEPS)/sigmoid > docs/sigmoid_speed.md
	for s in article study lr_grid scale_law architectures overlay sigmoid digits_study; do cp $(SWEEPS)/$$s/summary.md docs/$$s.md; cp $(SWEEPS)/$$s/curves.png docs/$$s.png; done
	cp lightning_logs/threshold_digits/threshold.md docs/digits_threshold.md
	cp $(SWEEPS)/scale_law/scale_law.png docs/scale_law_panels.png
	cp lightning_logs/threshold/threshold.md docs/threshold.md
	$(PY) -m fmnist_scaling.tools.facts

# The benchmark's JSON record: docs/bench/bench_<time>.json (docs/bench/README.md names the latest);
# ARGS: its flags (python -m fmnist_scaling.tools.bench --help), e.g. --study-sweep full
bench: data
	$(PY) -m fmnist_scaling.tools.bench $(ARGS)

# On a machine with a CUDA GPU: runs, evaluate, benchmark and tests on it, one JSON (about 7 minutes)
gpu-check: data
	$(PY) -m fmnist_scaling.tools.gpu_check

# A one-node SLURM cluster on this machine (root): this host, its cores and memory, partition debug, no
# accounting; `make test` runs tests/test_slurm.py against it (skipped, naming why, without it).
# Again: nothing to do while it runs. .ci/slurm_cluster.sh status says how it is.
cluster:
	@bash .ci/slurm_cluster.sh start

cluster-stop:
	@bash .ci/slurm_cluster.sh stop

clean:
	rm -rf lightning_logs/runs lightning_logs/multirun .pytest_cache
