#!/usr/bin/env bash
# Create the two virtual environments the peer benchmarks run in. Idempotent.
#
#   .venv-peers/        torch 2.13.0 (CPU) + ckatorch, cka-pytorch, pytorch-cka, torch-cka,
#                       deep-reps, higher (each peer with --no-deps where its declared
#                       dependencies would pull torchvision or a CUDA torch)
#   .venv-peer-repsim/  torch 2.13.0 (CPU) + the PyPI project "repsim" (it clashes with our
#                       import name, so the benchmarks call it in a subprocess)
#
# The installed versions are written to .venv-peers/peer-versions.txt (and printed).
# Usage: bash benchmarks/setup_peers.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
# A CPU torch wheel on local disk: any unpinned torch from PyPI pulls GBs of CUDA libraries.
TORCH_SPEC="torch==2.13.0"
TORCH_WHEEL="$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n 1 || true)"
if [[ -n "$TORCH_WHEEL" ]]; then TORCH_SPEC="$TORCH_WHEEL"; fi
CPU_INDEX="--extra-index-url https://download.pytorch.org/whl/cpu"
[[ -n "$TORCH_WHEEL" ]] && CPU_INDEX=""

# What the peers import at package level, besides torch and numpy (ckatorch: yaml, safetensors,
# seaborn). Not installed: lightning + torchmetrics (cka-pytorch; they pull torchvision), open_clip
# (deep-reps; a CLIP helper only): the runners load those peers' tensor-level modules directly.
PEER_EXTRAS=(numpy scipy tqdm scikit-learn matplotlib pandas pyyaml safetensors seaborn)

make_venv() {  # $1 = venv dir
    local venv="$1"
    if [[ ! -x "$venv/bin/python" ]]; then
        "$PY" -m venv "$venv"
    fi
    if ! "$venv/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
        # torch FIRST, so that no later install resolves a different (CUDA) torch.
        # shellcheck disable=SC2086
        "$venv/bin/pip" install -q $CPU_INDEX "$TORCH_SPEC"
    fi
}

pip_in() {  # $1 = venv dir, rest = pip install args; torch stays pinned
    local venv="$1"; shift
    "$venv/bin/pip" install -q "$@"
}

# ---- .venv-peers ----------------------------------------------------------------------
PEERS="$ROOT/.venv-peers"
make_venv "$PEERS"
pip_in "$PEERS" "${PEER_EXTRAS[@]}"
# --no-deps for every peer: several declare torchvision (which does not work beside this
# torch) or an unpinned torch; we add above only what their tensor-level code imports.
for peer in ckatorch cka-pytorch pytorch-cka torch-cka deep-reps higher; do
    if ! pip_in "$PEERS" --no-deps "$peer"; then
        echo "setup_peers: could not install $peer into .venv-peers" >&2
    fi
done

# ---- .venv-peer-repsim (PyPI "repsim") ---------------------------------------------------
PEER_REPSIM="$ROOT/.venv-peer-repsim"
make_venv "$PEER_REPSIM"
pip_in "$PEER_REPSIM" numpy scipy
if ! pip_in "$PEER_REPSIM" --no-deps repsim; then
    echo "setup_peers: could not install repsim (PyPI) into .venv-peer-repsim" >&2
fi

# ---- record versions -------------------------------------------------------------------
{
    echo "# written by benchmarks/setup_peers.sh on $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "## .venv-peers"
    "$PEERS/bin/pip" freeze --all | LC_ALL=C sort
    echo "## .venv-peer-repsim"
    "$PEER_REPSIM/bin/pip" freeze --all | LC_ALL=C sort
} > "$PEERS/peer-versions.txt"
grep -iE '^(torch|ckatorch|cka|pytorch|deep|higher|repsim)' "$PEERS/peer-versions.txt"
echo "setup_peers: done; versions in .venv-peers/peer-versions.txt"
