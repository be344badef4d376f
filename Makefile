# The README's two commands: `make demo` and `make test`. Both install first when needed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.epsd_installed

.PHONY: install demo test bench bench-digits bench-scale lint clean
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

# The benchmark's data, not a dependency of the package or the tests: Debian's package of the
# four official Fashion-MNIST files, installed only when neither copy is there and apt exists.
FASHION_SYS := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
bench: install
	@if [ ! -e data/fashion-mnist/train-images-idx3-ubyte ] \
	    && [ ! -e data/fashion-mnist/train-images-idx3-ubyte.gz ] && [ ! -e $(FASHION_SYS) ] \
	    && command -v apt-get >/dev/null 2>&1; then \
	  echo "[bench] installing dataset-fashion-mnist"; \
	  apt-get install -y dataset-fashion-mnist || \
	    (apt-get update && apt-get install -y dataset-fashion-mnist) || true; \
	fi
	$(PY) tools/benchmark/run.py --data fashion

bench-digits: install
	$(PY) tools/benchmark/run.py

bench-scale: install
	$(PY) tools/benchmark/scale.py --batches 2 4 --micro-batches 2 --inner-steps-also 1

lint: install
	$(PY) -m ruff check epsd_mm tools tests configs

clean:
	rm -rf work_dirs data/demo
