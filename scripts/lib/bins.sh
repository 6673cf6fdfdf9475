# Sourced by the scripts that drive leafe-host and leafe-trainer: builds both
# and sets `bin` to their directory. PROFILE=release builds and runs the
# optimised binaries (the same results, sooner); the default is the dev profile.
case ${PROFILE:-dev} in
  dev) cargo build -q -p leafe-host -p leafe-trainer; bin=${CARGO_TARGET_DIR:-target}/debug ;;
  release) cargo build -q --release -p leafe-host -p leafe-trainer; bin=${CARGO_TARGET_DIR:-target}/release ;;
  *) echo "PROFILE must be dev or release" >&2; exit 2 ;;
esac
