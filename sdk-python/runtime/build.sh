#!/usr/bin/env bash
# Builds the wasmcorn Python runtime: CPython for wasm32-wasi from Debian's
# python3.11 and zlib source packages, and the wasmcorn reactor shim linked
# against it. Everything comes from the Debian archive (no PyPI, no other
# downloads).
#
# Usage: sdk-python/runtime/build.sh [-q]
#
# Two cached stages under ${WASMCORN_CACHE:-~/.cache/wasmcorn}/python/:
#   cpython-<key1>/  static libpython3.11 + module libraries, headers, the
#                    patched Lib/ sources, a plain python.wasm (for tests).
#                    key1 = sha256(the text of build_cpython below, the
#                    Debian source versions and patch selection, the
#                    compiler, wasi-libc and build-python versions).
#   runtime-<key2>/  wasmcorn-python.wasm (shim + libpython, DWARF stripped)
#                    and stdlib.zip (sourceless, trimmed).
#                    key2 = sha256(key1, the shim, link.sh, stdlib_zip.py).
# Keys hash contents, never paths, so every checkout shares the cache; and
# only build_cpython's own text keys stage 1, so editing the rest of this
# script does not rebuild CPython. A stage whose directory exists is reused
# as is: a cache hit costs a few dpkg/apt-cache queries and hashing (well
# under 10 s). Builds of one key are serialized by a lock; stages unused for
# 30 days are deleted. Both stages are linked from
# sdk-python/build/{cpython,runtime}.
#
# Dependencies: scripts/deps.sh python (clang-19 lld-19 llvm-19 wasi-libc
# libclang-rt-19-dev-wasm32 python3.11 dpkg-dev zip).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sdk=$(dirname "$here")
cache_root=${WASMCORN_CACHE:-$HOME/.cache/wasmcorn}/python
llvm=19
cc=clang-$llvm
ar=llvm-ar-$llvm
ranlib=llvm-ranlib-$llvm
strip=llvm-strip-$llvm
build_py=/usr/bin/python3.11   # Debian's; /root/.pyenv may shadow python3 on PATH
jobs=$(nproc)
quiet=0
[[ ${1:-} == -q ]] && quiet=1

log() { echo "python-runtime: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs a long step with its output in a log file; shows the tail on failure.
step() {
  local name=$1; shift
  local logf=$work/$name.log
  local t0=$SECONDS
  log "$name ... (log: $logf)"
  # In the background so that set -e holds inside the step (it is ignored
  # in a command that is tested by if, || or &&).
  ( "$@" ) >"$logf" 2>&1 &
  if ! wait $!; then
    tail -n 40 "$logf" >&2
    die "$name failed (full log: $logf)"
  fi
  log "$name done in $((SECONDS - t0)) s"
}

for tool in $cc wasm-ld-$llvm $ar $ranlib $strip "$build_py" apt-cache dpkg-query; do
  command -v "$tool" >/dev/null || die "$tool not found; run: scripts/deps.sh python"
done
[[ -f /usr/lib/wasm32-wasi/libc.a ]] || die "wasi-libc missing; run: scripts/deps.sh python"

mkdir -p "$cache_root/src"
# Source downloads are serialized for the whole cache (they are quick once
# cached); each stage has its own lock below.
exec 9>"$cache_root/src/.lock"
flock 9

# --- sources -------------------------------------------------------------

apt_as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# Debian source indexes must be known to apt-cache; mirror the machine's
# binary suites as deb-src once (see debsrc.py).
# (grep reads all of its input: grep -q would SIGPIPE apt-cache under pipefail.)
has_deb_src() { apt-cache showsrc --only-source python3.11 2>/dev/null | grep -c '^Version:' >/dev/null; }

ensure_deb_src() {
  has_deb_src && return
  log "enabling deb-src for this machine's Debian suites"
  "$build_py" "$here/debsrc.py" | apt_as_root tee /etc/apt/sources.list.d/wasmcorn-deb-src.sources >/dev/null
  apt_as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
  has_deb_src || die "apt-cache still knows no python3.11 source package after enabling deb-src"
}

# fetch_source PKG: prints the newest version of source package PKG whose
# .dsc and tarballs could be downloaded into $cache_root/src. Versions whose
# files are missing from the mirror (it happens on debian-security) are
# remembered as unavailable and skipped.
fetch_source() {
  local pkg=$1 v nv
  local versions
  versions=$(apt-cache showsrc --only-source "$pkg" | awk '/^Version:/ {print $2}' | sort -u |
    while read -r v; do echo "$v"; done | sort -r -V)
  [[ -n $versions ]] || die "no source versions of $pkg known to apt"
  for v in $versions; do
    nv=${v#*:}   # file names drop the epoch
    if [[ -f $cache_root/src/${pkg}_${nv}.dsc ]]; then echo "$v"; return; fi
    [[ -f $cache_root/src/${pkg}_${nv}.unavailable ]] && continue
    log "downloading Debian source $pkg=$v"
    if (cd "$cache_root/src" && apt-get -o DPkg::Lock::Timeout=600 source -qq --download-only "$pkg=$v" >&2); then
      echo "$v"; return
    fi
    log "source $pkg=$v is not downloadable from this mirror; trying an older one"
    rm -f "$cache_root/src/${pkg}_${nv}".{dsc,debian.tar.xz}
    touch "$cache_root/src/${pkg}_${nv}.unavailable"
  done
  die "no version of source package $pkg could be downloaded"
}

ensure_deb_src
py_ver=$(fetch_source python3.11)
z_ver=$(fetch_source zlib)
py_nv=${py_ver#*:}; z_nv=${z_ver#*:}
py_up=${py_nv%-*}; z_up=${z_nv%-*}
py_orig=$(ls "$cache_root/src/python3.11_${py_up}.orig.tar."* | head -1)
z_orig=$(ls "$cache_root/src/zlib_${z_up}.orig.tar."* | head -1)
py_debian=$cache_root/src/python3.11_${py_nv}.debian.tar.xz

# Debian patches applied on top of the upstream tarball: the security and
# bug fixes (CVE-*, upstream gh-* backports, crash fixes). Debian's layout
# patches (multiarch, dist-packages, distutils, build system) are for
# Debian's own build and are left out.
patch_filter='^(CVE-|[0-9]{4}-3\.11-|relfile-|frame_dealloc-crash|shutdown-deadlock)'

# --- stage 1: CPython ----------------------------------------------------


build_cpython() {
  work=$cache_root/work-$key1
  rm -rf "$work"; mkdir -p "$work"
  local t0=$SECONDS

  # A private sysroot: Debian's clang, given --target=wasm32-wasi and the
  # default sysroot, also searches the host's /usr/include.
  local sysroot=$work/sysroot
  mkdir -p "$sysroot/include" "$sysroot/lib"
  ln -s /usr/include/wasm32-wasi "$sysroot/include/wasm32-wasi"
  ln -s /usr/lib/wasm32-wasi "$sysroot/lib/wasm32-wasi"
  local wcc="$cc --target=wasm32-wasi --sysroot=$sysroot"

  log "extracting python3.11 $py_ver and zlib $z_ver"
  tar -xf "$py_orig" -C "$work"
  tar -xf "$z_orig" -C "$work"
  local src; src=$(echo "$work"/Python-*)
  local zsrc; zsrc=$(echo "$work"/zlib-*)
  mkdir -p "$work/debian" && tar -xf "$py_debian" -C "$work/debian"
  local applied=0 p
  while read -r p; do
    [[ $p =~ $patch_filter ]] || continue
    patch -d "$src" -p1 --forward --quiet <"$work/debian/debian/patches/$p" >>"$work/patches.log" 2>&1 ||
      die "Debian patch $p does not apply to $py_orig (see $work/patches.log)"
    applied=$((applied + 1))
  done < <(grep -v '^\s*#' "$work/debian/debian/patches/series" | awk 'NF {print $1}')
  log "applied $applied Debian security/bug-fix patches"

  # zlib: a static libz.a, so zipimport and the zlib module work.
  local zinst=$work/zlib-install
  mkdir -p "$zinst/include" "$zinst/lib" "$work/zlib-obj"
  build_zlib() {
    local f
    for f in adler32 crc32 deflate infback inffast inflate inftrees trees zutil compress uncompr \
      gzclose gzlib gzread gzwrite; do
      $wcc -O2 -DHAVE_UNISTD_H -DHAVE_STDARG_H -c "$zsrc/$f.c" -o "$work/zlib-obj/$f.o"
    done
    $ar rcs "$zinst/lib/libz.a" "$work"/zlib-obj/*.o
    cp "$zsrc/zlib.h" "$zsrc/zconf.h" "$zinst/include/"
  }
  step zlib build_zlib

  # The build triple is computed with the host compiler, before any wasm CC.
  local build_triple; build_triple=$("$src/config.guess")
  mkdir -p "$work/build" "$work/empty-pkgconfig"
  configure_cpython() {
    cd "$work/build"
    CONFIG_SITE="$src/Tools/wasm/config.site-wasm32-wasi" \
    PKG_CONFIG_PATH="" PKG_CONFIG_LIBDIR="$work/empty-pkgconfig" \
      "$src/configure" -C \
      --host=wasm32-unknown-wasi --build="$build_triple" \
      --with-build-python="$build_py" \
      --prefix=/usr/local --disable-shared --disable-ipv6 --disable-test-modules \
      --without-ensurepip \
      CC="$wcc" CPP="$wcc -E" AR="$ar" RANLIB="$ranlib" READELF=true \
      CFLAGS="-Wno-error=int-conversion -Wno-error=incompatible-function-pointer-types" \
      ZLIB_CFLAGS="-I$zinst/include" ZLIB_LIBS="-L$zinst/lib -lz"
  }
  step configure configure_cpython
  make_cpython() {
    cd "$work/build"
    make -j"$jobs" all
    make -j"$jobs" libpython3.11.a
  }
  step make make_cpython

  # Install what the shim link and the stdlib zip need.
  local out=$cache_root/.tmp-cpython-$key1
  rm -rf "$out"; mkdir -p "$out/lib" "$out/include"
  cd "$work/build"
  printf 'print-%%:\n\t@echo $($*)\n' >"$work/print.mk"
  local modlibs libs
  modlibs=$(make -s -f Makefile -f "$work/print.mk" print-MODLIBS)
  libs=$(make -s -f Makefile -f "$work/print.mk" print-LIBS)
  cp libpython3.11.a "$out/lib/"
  cp "$zinst/lib/libz.a" "$out/lib/"
  # Bundled libraries some modules link (libmpdec, expat, ...), by name.
  local lib linkflags="-lpython3.11"
  for lib in $modlibs $libs; do
    case $lib in
      *.a) cp "$lib" "$out/lib/"; linkflags="$linkflags -l$(basename "$lib" .a | sed 's/^lib//')";;
      -L*) ;;
      -l*) [[ " $linkflags " == *" $lib "* ]] || linkflags="$linkflags $lib";;
      *) die "unexpected link item '$lib' in MODLIBS/LIBS";;
    esac
  done
  echo "$linkflags -lm" >"$out/linkflags"
  cp -r "$src/Include/." "$out/include/"
  cp pyconfig.h "$out/include/"
  cp -r "$src/Lib" "$out/Lib"
  cp "$(cat pybuilddir.txt)"/_sysconfigdata_*.py "$out/Lib/"
  # A plain interpreter (Programs/python.c), stripped, for smoke tests.
  $strip --strip-debug -o "$out/python.wasm" python.wasm
  {
    echo "python3.11 $py_ver (upstream $py_up, $applied Debian patches)"
    echo "zlib $z_ver"
    $cc --version | head -1
    echo "key $key1"
    echo "built in $((SECONDS - t0)) s on $(nproc) cores"
  } >"$out/BUILDINFO"
  cd /
  mv "$out" "$cpython"
  rm -rf "$work"
  log "CPython built in $((SECONDS - t0)) s: $cpython"
}

exec 9>&-   # sources are in place

key1=$( {
  declare -f build_cpython
  echo "sources python3.11=$py_ver zlib=$z_ver"
  echo "patches $patch_filter"
  $cc --version | head -1
  dpkg-query -W -f='wasi-libc ${Version}\nlibclang-rt ${Version}\n' wasi-libc libclang-rt-$llvm-dev-wasm32
  "$build_py" -c 'import sys; print("build-python", sys.version)'
} | sha256sum | cut -c1-16)
cpython=$cache_root/cpython-$key1

# with_lock NAME CMD...: run CMD holding the lock of one cache entry.
with_lock() {
  local name=$1; shift
  (
    exec 8>"$cache_root/.lock-$name"
    flock 8
    "$@"
  )
}

build_cpython_once() { [[ -f $cpython/BUILDINFO ]] || build_cpython; }
build_runtime_once() { [[ -f $runtime/BUILDINFO ]] || build_runtime; }

if [[ -f $cpython/BUILDINFO ]]; then
  [[ $quiet == 1 ]] || log "CPython cached: $cpython"
else
  with_lock "cpython-$key1" build_cpython_once
fi

# --- stage 2: shim + stdlib zip ------------------------------------------

shim_files=("$sdk"/shim/*.c "$sdk"/shim/*.h "$here/stdlib_zip.py" "$here/link.sh")
key2=$( { echo "$key1"; for f in "${shim_files[@]}"; do echo "== $(basename "$f")"; cat "$f"; done; } |
  sha256sum | cut -c1-16)
runtime=$cache_root/runtime-$key2

build_runtime() {
  work=$cache_root/work-runtime-$key2
  rm -rf "$work"; mkdir -p "$work"
  local out=$cache_root/.tmp-runtime-$key2
  rm -rf "$out"; mkdir -p "$out"
  local t0=$SECONDS
  step link bash "$here/link.sh" "$cpython" "$sdk/shim" "$work" "$out/wasmcorn-python.wasm"
  step stdlib-zip "$build_py" "$here/stdlib_zip.py" "$cpython/Lib" "$out/stdlib.zip"
  cp "$cpython/BUILDINFO" "$out/BUILDINFO"
  echo "runtime key $key2" >>"$out/BUILDINFO"
  mv "$out" "$runtime"
  rm -rf "$work"
  log "runtime built in $((SECONDS - t0)) s: $runtime"
}

if [[ -f $runtime/BUILDINFO ]]; then
  [[ $quiet == 1 ]] || log "runtime cached: $runtime"
else
  with_lock "runtime-$key2" build_runtime_once
fi
touch "$cpython" "$runtime"
find "$cache_root" -maxdepth 1 \( -name 'cpython-*' -o -name 'runtime-*' -o -name 'work-*' \) -mtime +30 \
  -exec rm -rf {} + 2>/dev/null || true

mkdir -p "$sdk/build"
ln -sfn "$cpython" "$sdk/build/cpython"
ln -sfn "$runtime" "$sdk/build/runtime"
[[ $quiet == 1 ]] || log "ready: $sdk/build/runtime -> $runtime"
