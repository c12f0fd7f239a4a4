# Two commands matter: `make run` (set up, then start the app) and `make test`.
# Both create .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Where torch (and torchvision) come from. Empty, the default: pip's configured index, as always.
# Where that index serves CUDA builds of torch (PyPI does on Linux: several GB), use the CPU ones:
#   make setup TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu   (or export TORCH_INDEX_URL)
TORCH_INDEX_URL ?=

.PHONY: setup run test lint bench bundle selftest clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL) torchvision==0.28.0) torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,bundle]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/cataract-grader $(ARGS)

test: setup
	$(VENV)/bin/ruff check engine cataract_app tests benchmarks packaging
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check engine cataract_app tests benchmarks packaging

# The double-click app: dist/CataractGrader/ (PyInstaller one-folder build; see docs/packaging.md).
bundle: setup
	bash packaging/build.sh

# Self-test of the built app (builds it first if there is none): grade, window, one training epoch.
selftest:
	test -x dist/CataractGrader/CataractGrader || $(MAKE) bundle
	dist/CataractGrader/CataractGrader --self-test

clean:
	rm -rf build dist .pytest_cache
