# cx-attribution: every target creates the virtual environment on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CX     := $(VENV)/bin/cx
STAMP  := $(VENV)/.installed

# Size of the demo world; override with `make demo CUSTOMERS=200000`.
CUSTOMERS ?= 20000
MONTHS    ?= 12
SEED      ?= 7

.PHONY: demo test test-all bench lint format lock clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# PYTHONWARNINGS: setuptools warns about every editable install (a note for packagers)
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(CX) simulate --customers $(CUSTOMERS) --months $(MONTHS) --seed $(SEED) --replace
	$(CX) summary
	$(CX) refresh

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -n 2 --dist loadfile --doctest-modules tests attribution experiments

test-all: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile --doctest-modules tests attribution experiments

bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Re-resolve the lock from pyproject.toml (needs the package registry).
lock:
	rm -rf /tmp/cx-lock-venv && $(PYTHON) -m venv /tmp/cx-lock-venv
	/tmp/cx-lock-venv/bin/pip install --quiet --upgrade pip
	/tmp/cx-lock-venv/bin/pip install --quiet '.[dev]'
	/tmp/cx-lock-venv/bin/pip freeze --exclude cx-attribution > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
