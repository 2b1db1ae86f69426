#!/usr/bin/env bash
# System (Debian) packages some tests need, installed only when missing. Safe to run again.
#   chromium: tests/reporting/test_html.py renders report.html in a real headless browser.
# Run as root (CI containers are); without root or apt-get it says what is missing and exits 0,
# and the tests that need a package skip with that reason.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/setup/system_packages.sh: missing ${need[*]} (install them as root with apt-get)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
