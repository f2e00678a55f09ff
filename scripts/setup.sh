#!/usr/bin/env bash
# One-command setup for facegcn_tf (idempotent: a second run takes seconds).
#
#   1. .venv with the pinned packages (requirements.txt; requirements-nodeps.txt --no-deps),
#      then this project installed into it in editable mode (pyproject.toml)
#   2. Bazel (Debian's bazel-bootstrap) where it is missing
#   3. bazel build //third_party:rasterizer  (tf_mesh_renderer op against the venv's TF)
#   4. offline assets: example photos, ICT face model check, identity-network weights
#   5. web: Node.js tools into tools/web/node_modules (npm ci: gltf-validator for the GLB tests,
#      @google/model-viewer for the results page, playwright-core for the browser test),
#      and Debian's chromium (browser test) and blender + python3-numpy (scripts/render_blender.py)
#
# Environment:
#   PYTHON           interpreter used to create .venv (default: python3; needs >= 3.10)
#   FACEGCN_ASSETS   where converted assets go / are searched first (default: ./assets)
#   SETUP_SKIP       comma list of steps to skip: venv,package,bazel,build,assets,web,browser,blender
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMPS="$VENV/.facegcn-stamps"
SKIP=",${SETUP_SKIP:-},"

log() { printf '[setup] %s\n' "$*"; }
skip() { [[ "$SKIP" == *",$1,"* ]]; }
digest() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------- 1. virtual environment
if ! skip venv; then
  if [[ ! -x "$PY" ]]; then
    "${PYTHON:-python3}" - <<'EOF' || { echo "[setup] error: Python >= 3.10 is required (set PYTHON=...)"; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)
EOF
    log "creating $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
  fi
  mkdir -p "$STAMPS"
  want="$(digest requirements.txt requirements-nodeps.txt)"
  if [[ "$(cat "$STAMPS/requirements" 2>/dev/null)" != "$want" ]]; then
    log "installing pinned packages (first time: a few minutes)"
    "$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
    echo "$want" > "$STAMPS/requirements"
  else
    log "packages up to date"
  fi
fi

# ---------------------------------------------------------------- 1b. the project, editable
# `import facegcn_tf` / `import benchmarks` from anywhere with .venv/bin/python; scripts/ rely
# on it. Offline: the build backend (setuptools >= 64, PEP 660) comes from the venv itself.
if ! skip package; then
  mkdir -p "$STAMPS"
  want="$(digest pyproject.toml)-$ROOT"
  installed=("$VENV"/lib/python*/site-packages/facegcn_tf-*.dist-info)
  if [[ -d "${installed[0]}" && "$(cat "$STAMPS/package" 2>/dev/null)" == "$want" ]]; then
    log "facegcn_tf installed (editable)"
  else
    if ! "$PY" -c 'import sys, setuptools; sys.exit(int(setuptools.__version__.split(".")[0]) < 64)' 2>/dev/null; then
      log "installing setuptools (build backend of the editable install)"
      "$PY" -m pip install --quiet --disable-pip-version-check "setuptools>=64"
    fi
    log "pip install -e . (editable)"
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$want" > "$STAMPS/package"
  fi
fi

# ---------------------------------------------------------------- 2. Bazel
if ! skip bazel && ! command -v bazel >/dev/null 2>&1; then
  log "installing Bazel (Debian bazel-bootstrap)"
  SUDO=""; [[ "$(id -u)" != 0 ]] && SUDO="sudo"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "[setup] error: bazel is not installed and apt-get is unavailable; install Bazel 4+ yourself"; exit 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq bazel-bootstrap >/dev/null
fi

# ---------------------------------------------------------------- 3. rasterizer op
OP="$ROOT/bazel-bin/third_party/rasterize_triangles_kernel.so"
if ! skip build; then
  mkdir -p "$STAMPS"
  tfver="$("$PY" -c 'import importlib.metadata as m; print(m.version("tensorflow-cpu") if any(d.metadata["Name"]=="tensorflow-cpu" for d in m.distributions()) else m.version("tensorflow"))' 2>/dev/null || echo none)"
  want="$(digest WORKSPACE .bazelrc BUILD third_party/BUILD third_party/*/*.bzl)-$tfver-$PY"
  if [[ -f "$OP" && "$(cat "$STAMPS/rasterizer" 2>/dev/null)" == "$want" ]]; then
    log "rasterizer up to date: $OP"
  else
    log "bazel build //third_party:rasterizer"
    export PYTHON_BIN_PATH="$PY"
    if ! bazel build //third_party:rasterizer; then
      echo "[setup] error: the rasterizer build failed (see the Bazel output above)"; exit 1
    fi
    # The Bazel server holds hundreds of MB; free it before tests or training.
    bazel shutdown >/dev/null 2>&1 || true
    echo "$want" > "$STAMPS/rasterizer"
  fi
fi

# ---------------------------------------------------------------- 4. offline assets
if ! skip assets; then
  log "preparing assets"
  TF_CPP_MIN_LOG_LEVEL=3 "$PY" scripts/prepare_assets.py
fi
# ---------------------------------------------------------------- 5. web tools, browser, Blender
apt_install() {  # apt_install PACKAGE...: installs the Debian packages that are missing
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "[setup] error: apt-get unavailable; install ${missing[*]} yourself"; exit 1
  fi
  local SUDO=""; [[ "$(id -u)" != 0 ]] && SUDO="sudo"
  log "installing ${missing[*]} (Debian)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}
if ! skip web; then
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  mkdir -p "$STAMPS"
  want="$(digest tools/web/package.json tools/web/package-lock.json)"
  if [[ -d tools/web/node_modules && "$(cat "$STAMPS/web" 2>/dev/null)" == "$want" ]]; then
    log "web tools up to date (tools/web/node_modules)"
  else
    log "npm ci (tools/web/: gltf-validator, model-viewer, playwright-core)"
    (cd tools/web && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$STAMPS/web"
  fi
fi
if ! skip browser; then
  apt_install chromium
fi
if ! skip blender; then
  apt_install blender python3-numpy
fi
log "done"
