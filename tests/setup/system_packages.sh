#!/usr/bin/env sh
# The Debian packages the test suite needs, installed when missing (`make test` runs this first).
# Idempotent and quiet: a no-op when everything is there. Without root (or apt-get) it only says
# what is missing; the tests that need it then skip, naming the package.
#
# To add a package: one line `need COMMAND_OR_PATH PACKAGE` below.
set -eu

missing=""
need() {  # need FILE_GLOB_OR_COMMAND DEBIAN_PACKAGE
    if command -v "$1" >/dev/null 2>&1; then return 0; fi
    for path in $1; do [ -e "$path" ] && return 0; done
    missing="$missing $2"
}

need '/usr/lib/postgresql/*/bin/initdb' postgresql   # tests/studies/test_tune.py: a shared study on PostgreSQL
need chromium chromium   # tests/reporting/test_html.py: report.html rendered headless

[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/setup/system_packages.sh: not root or no apt-get; missing:$missing (their tests will skip)" >&2
    exit 0
fi
echo "tests/setup/system_packages.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >/dev/null; then
    echo "tests/setup/system_packages.sh: could not install$missing (their tests will skip)" >&2
fi
