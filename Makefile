# flowdeck's front door.
#
#   make install   .venv with flowdeck[all,dev]; Debian packages the tests use (as root), Galaxy, the test OIDC provider (npm ci) and the RO-Crate validator if missing
#   make test      install, then the whole test suite (the README's test command; CI runs it)
#   make run       install, then `flowdeck up` (SQLite file, local storage, demo backend)
#   make lint      ruff check, ruff format --check, mypy, import-linter, shellcheck
#   make bench     install, then the benchmarks (bench/run.py)
#
# Every target is idempotent: a second `make install` does nothing unless pyproject.toml changed.
# Knobs: PYTHON=/path/to/python3.11  VENV=.venv  EXTRAS=all,dev  PYTEST_ARGS=...  ARGS=...

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.SILENT:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= all,dev
STAMP := $(VENV)/.flowdeck-installed
# pyenv's or the system's python3.11 first; any python3 is checked for >= 3.11 before use.
PYTHON ?= $(firstword $(shell command -v python3.11) \
                      $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3.11) \
                      $(shell command -v python3))

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1
export DEBIAN_FRONTEND := noninteractive

.PHONY: help install postgres debs galaxy node rocval test run lint bench

help:
	sed -n 's/^#   //p' Makefile

install: $(STAMP) postgres debs galaxy node rocval

# The venv and the editable install; redone only when pyproject.toml changes.
$(STAMP): pyproject.toml
	if [ -e "$(BIN)/python" ] && ! "$(BIN)/python" -c '' 2>/dev/null; then
	  echo "ERROR: $(VENV) is broken (its python does not run): remove it, then make install" >&2
	  exit 1
	fi
	if [ ! -x "$(BIN)/python" ]; then
	  py="$(PYTHON)"
	  if [ -z "$$py" ]; then
	    echo "ERROR: no python3.11 found; install it (Debian 12: apt-get install python3 python3-venv)" >&2
	    exit 1
	  fi
	  if ! "$$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
	    echo "ERROR: $$py is older than Python 3.11; set PYTHON=/path/to/python3.11" >&2
	    exit 1
	  fi
	  echo "==> creating $(VENV) with $$py ($$("$$py" --version))"
	  if ! "$$py" -m venv "$(VENV)"; then
	    echo "ERROR: '$$py -m venv' failed (Debian's python needs: apt-get install python3-venv)" >&2
	    exit 1
	  fi
	fi
	log="$(VENV)/pip-install.log"
	echo "==> pip install -e '.[$(EXTRAS)]' into $(VENV) (log: $$log)"
	start=$$SECONDS
	if ! "$(BIN)/python" -m pip install -e ".[$(EXTRAS)]" > "$$log" 2>&1; then
	  tail -n 40 "$$log" >&2
	  echo "ERROR: pip install failed; the whole log is in $$log" >&2
	  exit 1
	fi
	echo "    done in $$((SECONDS - start)) s"
	touch "$@"

# The PostgreSQL server that the test suite starts (tests/support/postgres.py) as a non-root user.
postgres:
	if compgen -G '/usr/lib/postgresql/*/bin/initdb' > /dev/null || command -v initdb > /dev/null; then
	  exit 0
	fi
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
	  echo "WARNING: no PostgreSQL server found; the postgres tests need one:" \
	       "sudo apt-get install -y postgresql (Debian), or set FLOWDECK_PG_BINDIR" >&2
	  exit 0
	fi
	echo "==> PostgreSQL server missing: apt-get install postgresql"
	log="$$(mktemp)"
	if ! { apt-get update -qq && apt-get install -y -qq postgresql; } > "$$log" 2>&1; then
	  tail -n 40 "$$log" >&2
	  echo "ERROR: apt-get install postgresql failed" >&2
	  exit 1
	fi
	rm -f "$$log"

# Debian packages the tests run for real (command:package): nginx -t checks deploy/nginx;
# bwrap and setpriv sandbox every local engine run (on by default, docs/adr/0010); podman, runc and
# mmdebstrap run and build the container tests' image (docs/adr/0013); mariadbd is the third database;
# slurmctld and munged run the one-node Slurm cluster of the Slurm tests (docs/cluster.md);
# bwa to fastp are gatk_variant_calling 2.x's tools (docs/references.md), salmon to Rscript (DESeq2)
# rnaseq_deseq2 2.x's (docs/pipelines.md).
DEBS ?= nginx:nginx bwrap:bubblewrap setpriv:util-linux podman:podman runc:runc mmdebstrap:mmdebstrap \
	mariadbd:mariadb-server chromium:chromium slurmctld:slurm-wlm munged:munge \
	bwa:bwa samtools:samtools bcftools:bcftools bgzip:tabix freebayes:freebayes fastp:fastp \
	salmon:salmon kallisto:kallisto cutadapt:cutadapt Rscript:r-bioc-deseq2
debs:
	missing=""
	for pair in $(DEBS); do
	  command -v "$${pair%%:*}" > /dev/null || [ -x "/usr/sbin/$${pair%%:*}" ] || missing="$$missing $${pair#*:}"
	done
	[ -n "$$missing" ] || exit 0
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
	  echo "WARNING: the tests need these Debian packages:$$missing (sudo apt-get install -y$$missing)" >&2
	  exit 0
	fi
	echo "==> Debian packages missing:$$missing"
	log="$$(mktemp)"
	if ! { apt-get update -qq && apt-get install -y -qq $$missing; } > "$$log" 2>&1; then
	  tail -n 40 "$$log" >&2
	  echo "ERROR: apt-get install$$missing failed" >&2
	  exit 1
	fi
	rm -f "$$log"

# The pinned Galaxy server that the galaxy tests start (its own venv in a cache folder).
galaxy:
	if [ -f scripts/galaxy/install.sh ]; then
	  bash scripts/galaxy/install.sh
	fi

# The browser tests' npm packages: the OIDC provider they sign in at (oidc-provider) and axe-core,
# pinned with their whole tree by tests/support/oidc_provider/package-lock.json; npm ci again only
# when the lock file changed.
OIDC_PROVIDER := tests/support/oidc_provider
node:
	if ! command -v npm > /dev/null; then
	  echo "WARNING: no npm: the OIDC and axe-core browser tests will skip (Debian: apt-get install nodejs npm)" >&2
	  exit 0
	fi
	if [ "$(OIDC_PROVIDER)/node_modules/.package-lock.json" -nt "$(OIDC_PROVIDER)/package-lock.json" ]; then
	  exit 0
	fi
	echo "==> npm ci in $(OIDC_PROVIDER)"
	npm ci --prefix "$(OIDC_PROVIDER)" --no-audit --no-fund --ignore-scripts --loglevel=error

# The RO-Crate tests' validator (PyPI roc-validator, pinned), in a venv of its own: it requires
# rich<14, which flowdeck's CLI (rich 15) cannot share. Made again only when this pin changes.
ROCVAL := .venv-rocval
ROCVAL_PIN := roc-validator==0.13.0
rocval: $(STAMP)
	if [ "$$(cat $(ROCVAL)/.pin 2>/dev/null)" = "$(ROCVAL_PIN)" ]; then
	  exit 0
	fi
	echo "==> $(ROCVAL_PIN) in $(ROCVAL)"
	rm -rf "$(ROCVAL)"
	"$(BIN)/python" -m venv "$(ROCVAL)"
	"$(ROCVAL)/bin/pip" install --quiet "$(ROCVAL_PIN)"
	echo "$(ROCVAL_PIN)" > "$(ROCVAL)/.pin"

test: install
	echo "==> $(BIN)/pytest $(PYTEST_ARGS)"
	"$(BIN)/pytest" $(PYTEST_ARGS)

run: $(STAMP)
	"$(BIN)/flowdeck" up $(ARGS)

lint: install
	echo "==> ruff check"; "$(BIN)/ruff" check .
	echo "==> ruff format --check"; "$(BIN)/ruff" format --check .
	echo "==> mypy src"; "$(BIN)/mypy" src
	echo "==> lint-imports"; "$(BIN)/lint-imports"
	scripts="$$(git ls-files '*.sh' .ci/run)"
	if command -v shellcheck > /dev/null; then
	  echo "==> shellcheck"; shellcheck $$scripts
	else
	  echo "==> shellcheck not installed (apt-get install shellcheck): skipped"
	fi

bench: install
	if [ ! -f bench/run.py ]; then
	  echo "ERROR: bench/run.py, the benchmarks' entry point, does not exist yet" >&2
	  exit 1
	fi
	"$(BIN)/python" bench/run.py $(ARGS)
