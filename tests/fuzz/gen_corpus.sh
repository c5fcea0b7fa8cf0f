#!/bin/sh
# Regenerates tests/fuzz/corpus/ from gen_corpus.cpp (needs a C++20 compiler and ldns).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2046  # pkg-config's flags, one word each
${CXX:-c++} -std=c++20 -O1 -o "$tmp/gen_corpus" "$here/gen_corpus.cpp" $(pkg-config --cflags --libs ldns)
rm -rf "$here/corpus"
"$tmp/gen_corpus" "$here/corpus"
du -sh "$here/corpus"
for d in "$here"/corpus/*/; do echo "$(basename "$d"): $(find "$d" -type f | wc -l) seeds"; done
