#!/usr/bin/env bash
# Installs everything the test suite needs, then runs lint, type checks and the suite.
# Debian packages are installed non-interactively when running as root; otherwise the
# interop tests skip the missing tools (or fail under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(tshark ibsim-utils libumad2sim0 opensm infiniband-diags)
missing=()
for pkg in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # tshark asks whether non-root users may capture; answer no without a prompt.
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "== not root: cannot install ${missing[*]}; interop tests will skip (fail under CI=true)"
    fi
fi

echo "== installing ibmig with its test dependencies"
python3 -m pip install -q --disable-pip-version-check -e ".[test]"

echo "== ruff"
python3 -m ruff check .
python3 -m ruff format --check .
echo "== mypy --strict"
python3 -m mypy --strict
echo "== pytest"
python3 -m pytest -q "$@"
