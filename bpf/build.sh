#!/bin/sh
# Rebuilds the BPF objects shipped in bpf/obj/ from bpf/*.bpf.c.
#   bpf/build.sh           build into bpf/obj/
#   bpf/build.sh --check   build into a temporary directory and fail if bpf/obj/ differs
# Needs clang (>= 11, with the bpf target) and the libbpf headers (Debian: clang libbpf-dev).
# The output is reproducible: paths are relative and DWARF is stripped (BTF stays).
set -eu
cd "$(dirname "$0")"
check=0
[ "${1:-}" = "--check" ] && check=1
CLANG=${CLANG:-clang}
STRIP=${LLVM_STRIP:-}
if [ -z "$STRIP" ]; then
  for s in llvm-strip llvm-strip-18 llvm-strip-17 llvm-strip-16 llvm-strip-15 llvm-strip-14; do
    command -v "$s" >/dev/null 2>&1 && { STRIP=$s; break; }
  done
fi
command -v "$CLANG" >/dev/null 2>&1 || { echo "bpf/build.sh: clang not found (apt-get install clang)" >&2; exit 2; }
[ -n "$STRIP" ] || { echo "bpf/build.sh: llvm-strip not found (apt-get install llvm)" >&2; exit 2; }
[ -f /usr/include/bpf/bpf_helpers.h ] || { echo "bpf/build.sh: libbpf headers not found (apt-get install libbpf-dev)" >&2; exit 2; }
arch=$(uname -m)
multiarch=/usr/include/$arch-linux-gnu
out=obj
[ $check = 1 ] && out=$(mktemp -d)
mkdir -p "$out"
for src in *.bpf.c; do
  obj="$out/${src%.c}.o"
  "$CLANG" -target bpf -O2 -g -Wall -Werror -mcpu=v3 \
    -I. -I"$multiarch" -fdebug-prefix-map="$PWD"=. \
    -c "$src" -o "$obj"
  "$STRIP" -g "$obj"
  if [ $check = 1 ]; then
    if cmp -s "$obj" "obj/${src%.c}.o"; then echo "bpf/obj/${src%.c}.o is up to date"
    else echo "bpf/obj/${src%.c}.o differs from a rebuild of bpf/$src: run bpf/build.sh and commit" >&2; rm -rf "$out"; exit 1; fi
  else
    echo "built bpf/$obj"
  fi
done
[ $check = 1 ] && rm -rf "$out"
exit 0
