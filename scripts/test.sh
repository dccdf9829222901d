#!/usr/bin/env bash
# Installs everything the test suite needs, then runs lint, type checks and the suite.
#
#   ./scripts/test.sh [PYTEST ARGS...]    e.g. ./scripts/test.sh -m "not slow"
#   ./scripts/test.sh --setup-only        install, then stop
#
# Python packages go into a virtual environment, .venv in the repository (made when
# missing, with $PYTHON, default python3): Debian 12's system Python refuses
# `pip install` outside one (PEP 668, "externally-managed-environment").
# Debian packages (the interop tools, and python3-venv when python3 cannot make a
# venv) are installed non-interactively when running as root; otherwise the interop
# tests skip the missing tools (or fail under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
setup_only=false
if [ "${1:-}" = "--setup-only" ]; then
    setup_only=true
    shift
fi

venv_ok() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; }

DEBS=(tshark ibsim-utils libumad2sim0 opensm infiniband-diags)
missing=()
for pkg in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Debian splits ensurepip, which `python3 -m venv` needs, into python3-venv.
need_venv_pkg=false
if ! venv_ok && ! "$PYTHON" -c "import ensurepip" 2>/dev/null; then
    need_venv_pkg=true
    missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # tshark asks whether non-root users may capture; answer no without a prompt.
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    elif [ "$need_venv_pkg" = true ]; then
        echo "scripts/test.sh: $PYTHON cannot create a virtual environment (no ensurepip): install Debian's python3-venv as root (apt-get install python3-venv), then run this again" >&2
        exit 1
    else
        echo "== not root: cannot install ${missing[*]}; interop tests will skip (fail under CI=true)"
    fi
fi

if ! venv_ok; then
    echo "== creating $VENV with $PYTHON"
    rm -rf "$VENV"  # a half-made one (no pip) from an earlier failed attempt
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

echo "== installing ibmig with its test dependencies into $VENV"
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
if [ "$setup_only" = true ]; then
    exit 0
fi

echo "== ruff"
"$PY" -m ruff check .
"$PY" -m ruff format --check .
echo "== mypy --strict"
"$PY" -m mypy --strict
echo "== pytest"
"$PY" -m pytest -q "$@"
