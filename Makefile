# The two commands README gives. Each does its own set-up first (scripts/setup.sh is idempotent).
PY ?= python3
export HF_HUB_OFFLINE ?= 1

.PHONY: setup test demo
setup:
	bash scripts/setup.sh

# Run the test suite.
test: setup
	$(PY) -m pytest -q

# The main job: picture grids of the small worlds, the zoo's MAE reconstructions and accuracies.
demo: setup
	$(PY) -m cag_lib.demo --out outputs/demo
