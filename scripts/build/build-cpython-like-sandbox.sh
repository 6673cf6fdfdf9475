#!/usr/bin/env bash
# Build a native CPython configured as the sandbox's interpreter is, so that
# `bench --suite compute` can price WebAssembly and Cranelift on their own:
# the same interpreter, once compiled to x86-64 by clang, once to wasm by
# clang and then by Cranelift.
#
# The sandbox's CPython (componentize-py 0.25.1; its _sysconfigdata says so)
# is 3.14 built by clang at -O3 without pymalloc, without computed gotos (wasm
# has none), without profile-guided optimisation or LTO. This builds CPython
# 3.14.4 (Debian's copy of the python.org release, checked by sha256) the same
# way, natively.
#
#   scripts/build/build-cpython-like-sandbox.sh [DIR]   (default target/cpython-like-sandbox)
#   then: LEAFE_BENCH_PYTHON_EXTRA=DIR/python leafe-host bench --suite compute
#
# Needs clang (CC=clang-19 by default; Debian: apt install clang-19), make and
# curl; ~5 minutes on 2 cores. A second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-target/cpython-like-sandbox}
cc=${CC:-clang-19}
version=3.14.4
tarball=python3.14_$version.orig.tar.xz
url=http://deb.debian.org/debian/pool/main/p/python3.14/$tarball
sha256=d923c51303e38e249136fc1bdf3568d56ecb03214efdef48516176d3d7faaef8

if [[ -x $dir/python ]]; then
  echo "already built: $dir/python" >&2
  exit 0
fi
command -v "$cc" >/dev/null || {
  echo "error: $cc not found (Debian: apt install clang-19, or set CC to a clang)" >&2
  exit 1
}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [[ ! -f $dir/$tarball ]]; then
  echo "downloading CPython $version's sources (23 MB)" >&2
  curl -fsS -o "$dir/$tarball.part" "$url"
  mv "$dir/$tarball.part" "$dir/$tarball"
fi
echo "$sha256  $dir/$tarball" | sha256sum --check --status || {
  echo "error: $dir/$tarball has the wrong sha256 (want $sha256); deleting it" >&2
  rm -f "$dir/$tarball"
  exit 1
}
rm -rf "$dir/src" "$dir/build"
mkdir -p "$dir/src" "$dir/build"
tar -xf "$dir/$tarball" -C "$dir/src" --strip-components=1
cd "$dir/build"
echo "configuring and building (logs in $dir/build)" >&2
CC=$cc ../src/configure --without-pymalloc --without-computed-gotos --disable-test-modules \
  > configure.log 2>&1 || { tail -20 configure.log >&2; exit 1; }
make -j"$(nproc)" python > make.log 2>&1 || { tail -20 make.log >&2; exit 1; }
# The build tree's python finds its standard library beside it (pybuilddir.txt).
ln -sf build/python "$dir/python"
"$dir/python" -c 'import sys; print("built:", sys.version)'
