# The two commands README gives. Each does its own set-up first (scripts/setup.sh is idempotent).
PY ?= python3
export HF_HUB_OFFLINE ?= 1

.PHONY: setup test book demo serve
setup:
	bash scripts/setup.sh

# The tests: every chapter notebook run small (papermill, numbers checked against baselines), the
# book built from them, every page opened in headless Chromium with no network (screenshots in
# _build/screenshots), then the test suite (which also checks the built pages).
# Then the checks that depend on the CPU's kernels (the chapters' smoke numbers, the seeded runs,
# the stored sets re-scored) once more with torch, oneDNN and MKL held to AVX2, as on a CPU without
# AVX-512: their tolerances come from the spread across such kernel paths (scripts/kernel_spread.py).
# The AVX2 chapters run first, since every run of build_book.py stages the book afresh; a CPU that
# is not x86-64 has no AVX2 path to force and skips them.
AVX2 = [ "$$(uname -m)" != x86_64 ] || ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
test: setup
	$(AVX2) $(PY) scripts/build_book.py --smoke --no-build
	$(PY) scripts/build_book.py --smoke
	$(PY) scripts/check_pages.py
	$(PY) -m pytest -q
	$(AVX2) $(PY) -m pytest -q -m kernel_paths

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
