#!/usr/bin/env bash
# Install olah (a Hugging Face mirror server, PyPI `olah`) into its own virtual environment.
#
# olah requires fastapi/uvicorn/pydantic-settings/huggingface_hub>=1.27 and would upgrade some of
# them in modelrunner's environment; a venv of its own keeps modelrunner's dependencies exactly
# as they are. The tests start it with "$OLAH_VENV/bin/olah-cli".
#
#   OLAH_VENV (default ~/.cache/modelrunner/olah-venv)   OLAH_VERSION (default 0.5.4)
set -euo pipefail
OLAH_VENV="${OLAH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/modelrunner/olah-venv}"
OLAH_VERSION="${OLAH_VERSION:-0.5.4}"
PYTHON="${PYTHON:-python3}"
if [ -x "$OLAH_VENV/bin/olah-cli" ] && "$OLAH_VENV/bin/python" -c "import olah" 2>/dev/null; then
    echo "olah already installed in $OLAH_VENV"
    exit 0
fi
"$PYTHON" -m venv "$OLAH_VENV"
"$OLAH_VENV/bin/pip" install --quiet --disable-pip-version-check "olah==$OLAH_VERSION"
echo "olah $OLAH_VERSION installed in $OLAH_VENV"
