#!/usr/bin/env bash
# Compiles the wasmcorn shim and links it with the static CPython into a
# WASI reactor. Called by build.sh (stage 2).
# Usage: link.sh CPYTHON_DIR SHIM_DIR WORK_DIR OUT.wasm
set -euo pipefail
cpython=$1 shim=$2 work=$3 out=$4
llvm=19

sysroot=$work/sysroot
mkdir -p "$sysroot/include" "$sysroot/lib"
ln -sfn /usr/include/wasm32-wasi "$sysroot/include/wasm32-wasi"
ln -sfn /usr/lib/wasm32-wasi "$sysroot/lib/wasm32-wasi"
wcc=(clang-$llvm --target=wasm32-wasi --sysroot="$sysroot")

cflags=(-O2 -Wall -Werror -Wno-unused-parameter -D_WASI_EMULATED_SIGNAL -D_WASI_EMULATED_GETPID
  -D_WASI_EMULATED_PROCESS_CLOCKS -I"$cpython/include" -I"$shim")
objs=()
for f in "$shim"/*.c; do
  o=$work/$(basename "$f" .c).o
  "${wcc[@]}" "${cflags[@]}" -c "$f" -o "$o"
  objs+=("$o")
done

# -nostartfiles: the shim defines _initialize itself (see shim.c).
# --stack-first: a stack overflow traps instead of corrupting data.
# No --initial-memory: memory starts at what the data needs and grows.
read -r -a libs <"$cpython/linkflags"
"${wcc[@]}" -nostartfiles -Wl,--no-entry -Wl,--stack-first -z stack-size=1048576 \
  -Wl,--strip-debug \
  -o "$work/shim.wasm" "${objs[@]}" -L"$cpython/lib" "${libs[@]}"
llvm-strip-$llvm --strip-debug -o "$out" "$work/shim.wasm"
echo "link: $(stat -c %s "$out") bytes -> $out"
