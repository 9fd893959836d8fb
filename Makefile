# The two commands README gives. Each does its own set-up first (scripts/setup.sh is idempotent).
PY ?= python3
export HF_HUB_OFFLINE ?= 1

.PHONY: setup test book demo serve
setup:
	bash scripts/setup.sh

# The tests: every chapter notebook run small (papermill, numbers checked against baselines), the
# book built from them, every page opened in headless Chromium with no network (screenshots in
# _build/screenshots), then the test suite (which also checks the built pages).
test: setup
	$(PY) scripts/build_book.py --smoke
	$(PY) scripts/check_pages.py
	$(PY) -m pytest -q

# The main job: every chapter executed with its default parameters, the book in _build/site/_build/html.
book: setup
	$(PY) scripts/build_book.py

# The main job: picture grids of the small worlds, the zoo's MAE reconstructions and accuracies.
demo: setup
	$(PY) -m cag_lib.demo --out outputs/demo

# The built book on this machine: http://127.0.0.1:$(PORT) (build it first with `make book` or `make test`).
PORT ?= 8000
serve:
	@test -f _build/site/_build/html/index.html || { echo "no built book: run make book (or make test) first"; exit 1; }
	@echo "serving the book at http://127.0.0.1:$(PORT)/ (Ctrl-C stops)"
	$(PY) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/site/_build/html
