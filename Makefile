# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV ?= .venv
# Which torch to install. The default is the CPU wheel this workplace serves locally; on a GPU machine use
# e.g. `make test TORCH_SPEC=torch` (newest CUDA build) or any spec pip accepts.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
DEMO_OUT ?= out/demo.mp4
PYTEST_ARGS ?=

.PHONY: setup test demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test,bench,ray,encoders]"
	touch $@

test: setup
	$(PY) -m pytest -c tests/pytest.ini $(PYTEST_ARGS)

demo: setup
	$(PY) -m talkgen_core demo --out $(DEMO_OUT)

bench: setup
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) out .pytest_cache
