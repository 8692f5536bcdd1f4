#!/usr/bin/env bash
# ironwave developer entry point: sets up .venv (idempotent) and runs a job.
#   bash scripts/dev.sh demo        set up (runtime deps) and run `ironwave demo`
#   bash scripts/dev.sh test [ARGS] set up (dev deps) and run the whole test suite
#   bash scripts/dev.sh setup [--dev]
#   bash scripts/dev.sh bench [ARGS]
#
# torch policy: a torch that the chosen Python already imports (for example a
# user's CUDA build) is kept: the venv sees it through --system-site-packages.
# Otherwise, on a machine without an NVIDIA driver, the local CPU wheel of
# torch 2.13.0 is used (pip find-links, e.g. /opt/wheels) or the CPU index of
# download.pytorch.org; CUDA wheels are never pulled onto a CPU-only machine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
PY="${PYTHON:-python3}"
VENV="${IRONWAVE_VENV:-$here/.venv}"
TORCH_VERSION="${IRONWAVE_TORCH_VERSION:-2.13.0}"

log() { printf '[ironwave setup] %s\n' "$*" >&2; }

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    if "$PY" -c 'import torch' >/dev/null 2>&1; then
      log "keeping the torch that $PY already has ($("$PY" -c 'import torch;print(torch.__version__)'))"
      "$PY" -m venv --system-site-packages "$VENV"
    else
      "$PY" -m venv "$VENV"
    fi
  fi
  VPY="$VENV/bin/python"
  if ! "$VPY" -c 'import torch' >/dev/null 2>&1; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      log "NVIDIA GPU found: installing torch (CUDA build from the default index)"
      "$VPY" -m pip install -q torch
    else
      log "no GPU: installing the CPU build of torch $TORCH_VERSION"
      local wheel="" d
      for d in ${PIP_FIND_LINKS:-} $("$VPY" -m pip config get global.find-links 2>/dev/null) /opt/wheels; do
        d="${d#file://}"
        [ -d "$d" ] || continue
        wheel=$(ls "$d"/torch-"$TORCH_VERSION"+cpu-*.whl 2>/dev/null | head -n 1 || true)
        [ -n "$wheel" ] && break
      done
      if [ -n "$wheel" ]; then
        "$VPY" -m pip install -q "$wheel"
      else
        "$VPY" -m pip install -q --retries 2 --timeout 30 "torch==$TORCH_VERSION" \
          --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
      fi
    fi
  fi
}

install_pkg() {
  local extra="$1" stamp="$VENV/.ironwave-$1.stamp"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    log "installing ironwave[$extra] (editable)"
    "$VPY" -m pip install -q --upgrade pip setuptools wheel >/dev/null
    if [ "$extra" = dev ]; then
      "$VPY" -m pip install -q -e ".[dev]"
      # nsgt ships only an sdist whose setup.py imports numpy: build it without isolation.
      "$VPY" -m pip install -q --no-build-isolation nsgt || log "warning: nsgt (test reference) could not be installed"
      # Test references installed without their (heavy, unneeded) dependency trees:
      # demucs 4.1.0 for HTDemucs equivalence, nnAudio for the CQT benchmark.
      "$VPY" -m pip install -q --no-deps demucs==4.1.0 nnAudio || log "warning: demucs/nnAudio (test references) could not be installed"
    else
      "$VPY" -m pip install -q -e .
    fi
    touch "$stamp"
  fi
}

cmd="${1:-demo}"; shift || true
case "$cmd" in
  setup)
    ensure_venv
    if [ "${1:-}" = "--dev" ]; then install_pkg dev; else install_pkg runtime; fi ;;
  demo)
    ensure_venv; install_pkg runtime
    exec "$VENV/bin/ironwave" demo "$@" ;;
  test)
    ensure_venv; install_pkg dev
    exec "$VPY" -m pytest "$@" ;;
  bench)
    ensure_venv; install_pkg dev
    exec "$VENV/bin/ironwave" bench "$@" ;;
  *)
    echo "usage: bash scripts/dev.sh {demo|test|setup [--dev]|bench} [ARGS...]" >&2; exit 2 ;;
esac
