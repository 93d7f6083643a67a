#!/usr/bin/env bash
# Create the virtual environment and install Certa's two services with their development tools.
#
# llama-cpp-python ships only as source on PyPI; it is compiled once (about 6 minutes on 2 cores) as a portable
# wheel (no -march=native) and cached in $CERTA_WHEEL_CACHE, so later installs take seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
LLAMA_VERSION=0.3.36
WHEELS=${CERTA_WHEEL_CACHE:-$HOME/.cache/certa/wheels}

if ! command -v "$PYTHON" >/dev/null; then
  echo "install: $PYTHON not found; Certa needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
# The Triton Python-backend stub embeds the interpreter through libpython3.11.so.
if [ "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("Py_ENABLE_SHARED"))')" != "1" ]; then
  echo "install: $PYTHON was built without a shared libpython (--enable-shared); the local Triton server needs it" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip wheel
fi

mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "==> building llama-cpp-python $LLAMA_VERSION (portable CPU build, about 6 minutes on 2 cores; cached in $WHEELS)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    "$VENV/bin/pip" wheel --no-deps --progress-bar on -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi

echo "==> installing the client package, the controller, its benchmarks and the local Triton stack"
"$VENV/bin/pip" install --quiet --find-links "$WHEELS" --constraint constraints.lock \
  -e clients/python -e "services/controller[dev]" -e "services/bench" -e "services/triton-local[model]"
echo "==> installed into $VENV"
