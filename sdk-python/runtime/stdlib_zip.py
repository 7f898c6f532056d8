"""Compile CPython's Lib/ into a trimmed, sourceless zip for wasm32-wasi.

Usage: python3.11 stdlib_zip.py LIBDIR OUT.zip

Every kept module becomes an unchecked-hash .pyc (PEP 552) at its module
path (json/__init__.pyc): the bundle builder extracts them under lib/ of a
plugin's files, where the runtime imports them sourceless, without looking
for a source or comparing times. Entries are stored with a fixed date, so
the zip is reproducible. Left out: tests, GUI and
terminal toolkits, packaging tools, and modules whose C half the wasm32-wasi
build does not have (see EXCLUDE).

Must run under the same CPython minor version as the target (3.11): the
bytecode format is version specific, and compile() is what produces it.
"""

import importlib.util
import os
import sys
import zipfile

# Top-level modules and packages left out of the runtime.
EXCLUDE = {
    # tests and demos
    "test", "idlelib", "turtledemo", "__phello__",
    # GUI / terminal: no display, no tty in a server guest
    "tkinter", "turtle.py", "curses",
    # packaging and tooling
    "ensurepip", "venv", "distutils", "lib2to3", "pydoc_data", "pydoc.py",
    # C halves not built for wasm32-wasi (no _ctypes, _sqlite3, _dbm, fork,
    # shared memory)
    "ctypes", "sqlite3", "dbm", "multiprocessing",
    "site-packages",
}
# Directory names dropped at any depth (package test suites).
EXCLUDE_DIRS = {"test", "tests", "idle_test", "__pycache__"}

# Where the runtime mounts the stdlib; compiled into co_filename so that
# tracebacks name the path the module was imported from.
PREFIX = "/wasmcorn/lib/"

FIXED_DATE = (1980, 1, 1, 0, 0, 0)


# Compiled as python -OO would: no docstrings, no asserts. Docstrings are
# a good part of a code object's memory, and every module an app imports
# is kept in every instance (in the snapshot when wizer pre-initializes).
OPTIMIZE = 2


def pyc_bytes(source, filename):
    code = compile(source, filename, "exec", dont_inherit=True, optimize=OPTIMIZE)
    source_hash = importlib.util.source_hash(source)
    return importlib._bootstrap_external._code_to_hash_pyc(code, source_hash, checked=False)


def entries(libdir):
    for root, dirs, files in os.walk(libdir):
        rel = os.path.relpath(root, libdir)
        dirs[:] = sorted(d for d in dirs
                         if d not in EXCLUDE_DIRS and not (rel == "." and d in EXCLUDE))
        for f in sorted(files):
            if not f.endswith(".py") or (rel == "." and f in EXCLUDE):
                continue
            path = f if rel == "." else os.path.join(rel, f)
            yield path, os.path.join(root, f)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: stdlib_zip.py LIBDIR OUT.zip")
    if sys.version_info[:2] != (3, 11):
        sys.exit("stdlib_zip.py: needs CPython 3.11 (the target's bytecode), got %s" % sys.version)
    libdir, out = sys.argv[1:]
    tmp = out + ".tmp"
    count = size = 0
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for rel, full in entries(libdir):
            with open(full, "rb") as f:
                source = f.read()
            data = pyc_bytes(source, PREFIX + rel)
            info = zipfile.ZipInfo(rel[:-3] + ".pyc", FIXED_DATE)
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
            count += 1
            size += len(data)
    os.replace(tmp, out)
    print("stdlib_zip: %d modules, %.1f MiB of bytecode -> %s" % (count, size / 2**20, out))


if __name__ == "__main__":
    main()
