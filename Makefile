# lakescore: `make help` lists the targets. Everything installs into this folder (.venv,
# .tools, var/), idempotently; a second `make` with nothing changed takes about a second.

SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Keep the project's own conf/ the default even when make runs from elsewhere.
export LAKESCORE_CONF ?= $(CURDIR)/conf

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}'

demo: install ## install, build the demo world, score it, print where to look (embedded defaults)
	$(VENV)/bin/lakescore demo

bench: install ## scoring throughput benchmark, full (2M rows + scaling to 8M; ~30 min quiet): bench/results.md
	$(VENV)/bin/python bench/scoring.py --mode full

bench-quick: install ## the same benchmark cases on 200,000 rows (a few minutes)
	$(VENV)/bin/python bench/scoring.py --mode quick

bench-backfill: install system-deps ## backfill + small partitions, Airflow (real scheduler) vs CLI range, validation on: bench/backfill_results.md (ARGS="--days 3 --rows 20000" for a small run)
	$(VENV)/bin/python bench/backfill.py $(ARGS)

test: install system-deps ## install what tests need and run the whole suite (ruff first)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

airflow: install ## start a local Airflow (standalone, SQLite) + the warm driver its tasks use; prints URL + login
	$(VENV)/bin/lakescore airflow

lint: install ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: install ## format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

install: $(VENV)/.installed var/jars/.installed var/jars/classes.jsa ## install the locked Python env and the Spark jars

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: every module's .pyc is written once, here. Without it, a Python that
# may not write them (PYTHONDONTWRITEBYTECODE, a read-only venv) compiles each imported module
# from source in every process: `import mlflow, sklearn.ensemble` 5.7 s instead of 2.4 s, in
# every run, Spark Python worker, Airflow task and test subprocess.
$(VENV)/.installed: $(UV) pyproject.toml uv.lock Makefile
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

lock: $(UV) ## re-resolve uv.lock after changing pyproject.toml
	$(UV) lock --python $(PYTHON)

# delta-spark's JVM jars and hadoop-aws (s3a://) from Maven Central, at install time only
# (see jobs/jvm/pom.xml; Hadoop's client jars come with pyspark and are never copied).
var/jars/.installed: jobs/jvm/pom.xml
	rm -rf var/jars
	mvn -q -B -f jobs/jvm/pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(CURDIR)/var/jars \
	    -DincludeGroupIds=io.delta,io.unitycatalog,io.openlineage,org.apache.hadoop,software.amazon.awssdk,software.amazon.s3.analyticsaccelerator \
	    -DexcludeArtifactIds=hadoop-client-api,hadoop-client-runtime
	@ls var/jars/delta-spark_*.jar var/jars/openlineage-spark_*.jar var/jars/hadoop-aws-*.jar var/jars/bundle-*.jar >/dev/null
	@touch $@

jars: var/jars/.installed ## fetch the Spark-side JVM jars into var/jars

# The driver JVM's class-data-sharing archive (faster Spark start; optional, built locally).
var/jars/classes.jsa: var/jars/.installed $(VENV)/.installed jobs/jvm/build_class_archive.py
	$(VENV)/bin/python jobs/jvm/build_class_archive.py $@

# Debian packages the integration tests use: PostgreSQL 15 (a real Airflow metadata DB) and
# headless Chromium (the UI test). Installed only when missing (CI runs as root).
system-deps: ## apt-get install PostgreSQL and Chromium when missing (tests need them)
	@missing=""; \
	[ -x /usr/lib/postgresql/15/bin/initdb ] || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

clean-demo: ## delete the demo's tables, registry and caches (keeps the installs)
	rm -rf var/warehouse var/mlflow var/models

clean: ## delete everything make created
	rm -rf $(VENV) .tools var

.PHONY: help demo bench bench-quick bench-backfill test airflow lint fmt install lock jars system-deps clean-demo clean
