#!/usr/bin/env bash
# The Python package's tests: a virtualenv with the pinned test tools
# (requirements.txt), the package installed into it from ./python the way
# the README says (pip + maturin), then pytest on python/tests (Gymnasium's
# env checker, hypothesis, the sandbox against the CLI, MBPP, Ray).
#
#   bash python/tests/run.sh [VENV]      (default VENV: target/venv-python)
#
# PROFILE=dev (the default) builds the native module with the dev profile,
# reusing `cargo test`'s artifacts; PROFILE=release builds it as pip does.
# Extra pytest arguments go in PYTEST_ARGS.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv=${1:-${CARGO_TARGET_DIR:-$root/target}/venv-python}
python=${PYTHON:-python3}

if ! "$venv/bin/python" -c "import gymnasium, hypothesis, pytest, ray, maturin" 2>/dev/null \
    || ! cmp -s python/tests/requirements.txt "$venv/requirements.txt"; then
    "$python" -m venv --clear "$venv"
    "$venv/bin/pip" install --quiet -r python/tests/requirements.txt
    cp python/tests/requirements.txt "$venv/requirements.txt"
fi

case ${PROFILE:-dev} in
  dev) export MATURIN_PEP517_ARGS="--profile dev"; bin=${CARGO_TARGET_DIR:-target}/debug ;;
  release) unset MATURIN_PEP517_ARGS; bin=${CARGO_TARGET_DIR:-target}/release ;;
  *) echo "PROFILE must be dev or release" >&2; exit 2 ;;
esac
# maturin (installed above) builds the wheel; pip finds it on PATH.
PATH="$venv/bin:$PATH" "$venv/bin/pip" install --quiet --no-build-isolation --no-deps --force-reinstall ./python

# The sandbox and Ray tests compare with the CLI.
if [ "${PROFILE:-dev}" = release ]; then cargo build -q --release -p leafe-host; else cargo build -q -p leafe-host; fi
export LEAFE_HOST="$root/$bin/leafe-host"
[ -x "$LEAFE_HOST" ] || LEAFE_HOST="$bin/leafe-host"

cd python/tests
# shellcheck disable=SC2086
"$venv/bin/python" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} .
