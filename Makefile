# The two commands of the README. Each creates .venv on first use.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-e2e bench table clean

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) launch.py

test: $(STAMP)
	$(PY) -m pytest -q -m "not e2e" tests

# make test includes the SIGKILL/resume bit-identity run, the real UCF101 smoke and the notebook; both targets use
# the persistent compilation cache (attn_har/compile_cache.py), so a second run compiles little.
# make test-e2e: a smoke training of every config and the analysis CLI, well over make test's 15 minutes.
test-e2e: $(STAMP)
	ATTN_HAR_ALL_SMOKE=1 $(PY) -m pytest -q -m e2e tests

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do PYTHONPATH=. $(PY) $$b || exit 1; done

table: $(STAMP)
	$(PY) -m attn_har.inspect --table thesis

clean:
	rm -rf $(VENV)
