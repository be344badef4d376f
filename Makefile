# The README's two commands: `make demo` and `make test`. Both install first when needed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.epsd_installed

.PHONY: install demo test bench bench-scale lint clean
.DEFAULT_GOAL := test

# The stamp makes a repeated `make install` cost one dependency check; the script itself is idempotent too.
$(STAMP): tools/misc/install.sh setup.py requirements/*.txt
	bash tools/misc/install.sh
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) tools/demo.py

test: install
	$(PY) -m pytest tests

bench: install
	$(PY) tools/benchmark/run.py

bench-scale: install
	$(PY) tools/benchmark/scale.py --batches 2 4 --micro-batches 2 --inner-steps-also 1

lint: install
	$(PY) -m ruff check epsd_mm tools tests configs

clean:
	rm -rf work_dirs data/demo
