#!/usr/bin/env bash
# Create benchmarks/.venv-reference: the reference GEARS (PyPI cell-gears 0.1.2) for
# benchmarks/compare_reference.py. Never a dependency of perturbsim; only that benchmark's
# helper, benchmarks/_reference_run.py, runs in it.
#
#   bash benchmarks/reference_env.sh            # PYTHON=python3.11 to choose the interpreter
#
# The project's machines install torch's CPU build from a local wheel; elsewhere PyPI's
# torch 2.13.0 for Linux is the CUDA build, so name the CPU index:
#
#   TORCH_INDEX=https://download.pytorch.org/whl/cpu bash benchmarks/reference_env.sh
#
# Pins: torch 2.13.0 first and alone (the CPU build; nothing else may pull a CUDA torch in),
# then cell-gears 0.1.2 with torch_geometric, scipy 1.14.1 and numpy < 2.3 (the versions the
# recorded figures were measured with; _reference_run.py also runs under newer scipy, which
# refuses the reference's indexing of its sparse X by a pandas Series) and pandas < 3 (the
# reference indexes a Series by position with [0], which pandas 3 refuses). Re-running it
# keeps an existing environment and installs only what is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-reference"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
torch_index=()
if [ -n "${TORCH_INDEX:-}" ]; then
    torch_index=(--index-url "$TORCH_INDEX")
fi
"${pip[@]}" "${torch_index[@]}" "torch==2.13.0"
"${pip[@]}" "torch==2.13.0" "cell-gears==0.1.2" "torch_geometric" "scipy==1.14.1" "numpy<2.3" "pandas<3"
"$venv/bin/python" - <<'EOF'
import importlib.metadata as m

import torch

for name in ("cell-gears", "torch", "torch_geometric", "scipy", "numpy", "pandas"):
    print(f"{name} {m.version(name)}")
assert not torch.version.cuda, "a CUDA build of torch was installed; remove the venv and rerun"
import gears  # noqa: F401  (imports torch_geometric, scanpy, dcor)
EOF
echo "reference environment ready: $venv"
