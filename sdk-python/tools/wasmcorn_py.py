#!/usr/bin/python3.11
"""Build and scaffold wasmcorn Python plugins.

    wasmcorn_py.py build APP_DIR -o OUT.wasm [--runtime DIR] [--wizer auto|on|off]
    wasmcorn_py.py files APP_DIR OUT_DIR [--runtime DIR]
    wasmcorn_py.py new NAME DIR

A plugin is the wasmcorn Python runtime (sdk-python/build/runtime:
CPython + the shim, built by `make python-runtime`) plus the plugin's files:
the standard library (lib/), the wasmcorn SDK and the app's pure-Python
dependencies (site/), and the app itself (app/). `build` writes them as a
zip into the custom section "wasmcorn.files" of OUT.wasm; the server mounts
that zip read-only at /wasmcorn in every instance (see sdk-python/bundlefs).
With wizer (npm @bytecodealliance/wizer) the interpreter and the app's
imports are pre-initialized into the module's memory, so an instance is
ready without importing anything.

The app directory may hold a pyproject.toml:

    [project]
    name = "py-flask"
    dependencies = ["flask"]     # installed distributions to bundle (Debian python3-*)

    [tool.wasmcorn]
    app = "app:app"              # module[:attribute]; default "app"
    kind = "auto"                # auto | wasmcorn | wsgi | handler
    exclude = ["tests/*"]        # app files left out (fnmatch patterns)
    dependency_sources = false   # also bundle the dependencies' .py sources

Dependencies are found in this Python's installation (for Debian's
python3.11: /usr/lib/python3/dist-packages), with their own requirements,
and bundled as sourceless bytecode; compiled extension modules (.so) are
skipped with a warning, since the guest cannot load them.

Runs under CPython 3.11 (the runtime's bytecode version): use
/usr/bin/python3.11 explicitly where another python3 comes first on PATH.
"""

import argparse
import fnmatch
import importlib.metadata
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
DEFAULT_RUNTIME = os.path.join(SDK, "build", "runtime")
SECTION = "wasmcorn.files"
GUEST_ROOT = "/wasmcorn"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
CACHE_TAG = sys.implementation.cache_tag  # cpython-311
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".venv", "venv",
             "node_modules"}
SKIP_FILES = ("*.pyc", "*.pyo", "*~", ".DS_Store", "*.wasm")


class BuildError(Exception):
    """A plugin cannot be built; the message says why and what to do."""


def log(msg):
    print("wasmcorn-py: " + msg, file=sys.stderr)


def pyc(source, guest_path, optimize=0):
    """Compile source to an unchecked-hash pyc (PEP 552) whose code objects
    name guest_path, the file's path inside the guest."""
    code = compile(source, guest_path, "exec", dont_inherit=True, optimize=optimize)
    return importlib._bootstrap_external._code_to_hash_pyc(
        code, importlib.util.source_hash(source), checked=False)


class Tree:
    """The plugin's files, built in a directory that mirrors /wasmcorn."""

    def __init__(self, root):
        self.root = root
        self.count = 0

    def write(self, rel, data):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        self.count += 1

    def add_module(self, rel, source, keep_source):
        """Add the Python file rel (e.g. site/flask/app.py). With its
        source: rel plus the pyc in __pycache__, so tracebacks show lines.
        Without: a sourceless rel + "c" (flask/app.pyc)."""
        guest = GUEST_ROOT + "/" + rel
        try:
            # Sourceless dependencies are compiled like the stdlib (-OO: no
            # docstrings or asserts, less memory per instance); code shipped
            # with its source (the app, the SDK) keeps both.
            data = pyc(source, guest, 0 if keep_source else 2)
        except SyntaxError as e:
            raise BuildError("%s: %s" % (rel, e)) from None
        if keep_source:
            self.write(rel, source)
            d, name = os.path.split(rel)
            self.write(os.path.join(d, "__pycache__", name[:-3] + "." + CACHE_TAG + ".pyc"), data)
        else:
            self.write(rel + "c", data)

    def add_dir(self, src, dest, keep_source, exclude=(), what=""):
        """Copy a directory: Python files compiled, data files as they are,
        native extensions skipped (returned)."""
        skipped = []
        for root, dirs, files in os.walk(src):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for f in sorted(files):
                full = os.path.join(root, f)
                rel = os.path.relpath(full, src).replace(os.sep, "/")
                if any(fnmatch.fnmatch(f, p) for p in SKIP_FILES) or any(fnmatch.fnmatch(rel, p) for p in exclude):
                    continue
                if f.endswith(NATIVE_SUFFIXES):
                    skipped.append(os.path.join(what, rel))
                    continue
                with open(full, "rb") as fh:
                    data = fh.read()
                target = dest + "/" + rel
                if f.endswith(".py"):
                    self.add_module(target, data, keep_source)
                else:
                    self.write(target, data)
        return skipped


def load_config(app_dir):
    cfg = {"name": os.path.basename(os.path.abspath(app_dir)), "dependencies": [], "app": "app",
           "kind": "auto", "exclude": [], "dependency_sources": False}
    path = os.path.join(app_dir, "pyproject.toml")
    if not os.path.exists(path):
        return cfg
    with open(path, "rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise BuildError("%s: %s" % (path, e)) from None
    project = doc.get("project", {})
    tool = doc.get("tool", {}).get("wasmcorn", {})
    known = {"app", "kind", "exclude", "dependency_sources"}
    unknown = set(tool) - known
    if unknown:
        raise BuildError("%s: unknown [tool.wasmcorn] keys %s (known: %s)"
                         % (path, ", ".join(sorted(unknown)), ", ".join(sorted(known))))
    cfg["name"] = project.get("name", cfg["name"])
    cfg["dependencies"] = list(project.get("dependencies", []))
    for k in known:
        if k in tool:
            cfg[k] = tool[k]
    if cfg["kind"] not in ("auto", "wasmcorn", "wsgi", "handler"):
        raise BuildError("%s: kind must be auto, wasmcorn, wsgi or handler, not %r" % (path, cfg["kind"]))
    return cfg


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _requirement(req):
    """Return the distribution name of a requirement string, or None when
    its marker excludes it (extras, other platforms, other Pythons)."""
    m = _REQ_NAME.match(req)
    if not m:
        raise BuildError("cannot parse requirement %r" % req)
    _, _, marker = req.partition(";")
    marker = marker.strip()
    if marker:
        if "extra" in marker:
            return None
        try:
            from packaging.markers import Marker
        except ImportError:
            return m.group(1)
        env = {"sys_platform": "wasi", "platform_system": "WASI", "os_name": "posix",
               "platform_machine": "wasm32", "implementation_name": "cpython"}
        try:
            if not Marker(marker).evaluate(env):
                return None
        except Exception:  # noqa: BLE001 - an odd marker: keep the dependency
            pass
    return m.group(1)


def _top_level(dist):
    text = dist.read_text("top_level.txt")
    if text:
        return sorted({t.strip() for t in text.split() if t.strip()})
    names = set()
    for f in dist.files or ():
        parts = f.parts
        if not parts or parts[0].endswith((".dist-info", ".egg-info")) or parts[0] in ("..", "__pycache__"):
            continue
        names.add(parts[0][:-3] if parts[0].endswith(".py") else parts[0])
    if names:
        return sorted(names)
    return [dist.metadata["Name"].lower().replace("-", "_")]


_DIST_INFO = re.compile(r"/dist-packages/([^/]+)\.(?:egg-info|dist-info)$")


def _debian_requires(dist):
    """Requirements of a distribution installed by a Debian package, from
    the package's Depends: Debian strips install_requires from the
    metadata of python3-* packages (apt resolves them instead)."""
    meta = getattr(dist, "_path", None)
    if meta is None or not str(meta).startswith("/usr/lib/python3/dist-packages/"):
        return []
    try:
        owner = subprocess.run(["dpkg", "-S", str(meta)], capture_output=True, text=True, check=True).stdout
        pkg = owner.split(":", 1)[0].strip()
        depends = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", pkg], capture_output=True, text=True,
                                 check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    names = []
    for group in depends.split(","):
        alts = [a.strip().split()[0].split(":")[0] for a in group.split("|") if a.strip()]
        # A group the interpreter satisfies ("python3-importlib-metadata |
        # python3 (>> 3.10)") needs nothing; only python3-* packages bring
        # Python distributions.
        if not alts or not all(a.startswith("python3-") for a in alts):
            continue
        try:
            files = subprocess.run(["dpkg", "-L", alts[0]], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        for line in files.splitlines():
            m = _DIST_INFO.search(line)
            if m:
                names.append(m.group(1).split("-")[0])
    return names


def resolve(requirements):
    """Return the installed distributions needed by requirements, with
    their own requirements, in a stable order."""
    seen = {}
    todo = [r for r in (_requirement(x) for x in requirements) if r]
    while todo:
        name = todo.pop(0)
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise BuildError("dependency %r is not installed for %s (on Debian: apt-get install python3-%s)"
                             % (name, sys.executable, key)) from None
        seen[key] = dist
        reqs = [r for r in (_requirement(x) for x in (dist.requires or ())) if r]
        todo.extend(reqs or _debian_requires(dist))
    return [seen[k] for k in sorted(seen)]


def add_dependencies(tree, cfg):
    skipped = []
    names = []
    for dist in resolve(cfg["dependencies"]):
        base = str(dist.locate_file(""))
        names.append("%s %s" % (dist.metadata["Name"], dist.version))
        for top in _top_level(dist):
            pkg = os.path.join(base, top)
            if os.path.isdir(pkg):
                skipped += tree.add_dir(pkg, "site/" + top, cfg["dependency_sources"], what=top)
            elif os.path.isfile(pkg + ".py"):
                with open(pkg + ".py", "rb") as f:
                    tree.add_module("site/" + top + ".py", f.read(), cfg["dependency_sources"])
            elif any(f.startswith(top + ".") and f.endswith(NATIVE_SUFFIXES) for f in os.listdir(base)):
                skipped.append(top + " (native extension)")
        meta = getattr(dist, "_path", None)
        if meta is not None and os.path.isdir(str(meta)):
            tree.add_dir(str(meta), "site/" + os.path.basename(str(meta)), True)
    for s in skipped:
        log("warning: skipped native extension %s (the guest loads pure Python only)" % s)
    return names


def build_files(app_dir, runtime, out_dir):
    """Write the plugin's file tree (what the guest sees at /wasmcorn)."""
    cfg = load_config(app_dir)
    stdlib = os.path.join(runtime, "stdlib.zip")
    if not os.path.exists(stdlib):
        raise BuildError("%s is missing: build the runtime first (make python-runtime)" % stdlib)
    tree = Tree(out_dir)
    with zipfile.ZipFile(stdlib) as z:
        for info in z.infolist():
            tree.write("lib/" + info.filename, z.read(info))
    sdk_skipped = tree.add_dir(os.path.join(SDK, "wasmcorn"), "site/wasmcorn", True)
    assert not sdk_skipped
    deps = add_dependencies(tree, cfg)
    meta = ("# Written by wasmcorn_py.py: what the runtime serves.\n"
            "NAME = %r\nAPP = %r\nKIND = %r\nDEPENDENCIES = %r\n"
            % (cfg["name"], cfg["app"], cfg["kind"], deps)).encode()
    tree.add_module("site/_wasmcorn_plugin.py", meta, True)
    exclude = list(cfg["exclude"]) + ["pyproject.toml", "manifest.toml", "test_*.py", "*_test.py",
                                       "tests/*", "conftest.py"]
    skipped = tree.add_dir(app_dir, "app", True, exclude=exclude, what="app")
    if skipped:
        raise BuildError("the app contains native extensions the guest cannot load: %s" % ", ".join(skipped))
    return cfg, deps, tree.count


def zip_tree(root):
    """Return the tree as a stored zip (sorted, fixed dates: reproducible)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        entries = []
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for f in files:
                entries.append(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/"))
        for rel in sorted(entries):
            info = zipfile.ZipInfo(rel, FIXED_DATE)
            info.external_attr = 0o644 << 16
            with open(os.path.join(root, rel), "rb") as f:
                z.writestr(info, f.read())
    return buf.getvalue()


def _uleb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def custom_section(name, data):
    """Encode a WebAssembly custom section."""
    name_b = name.encode()
    body = _uleb(len(name_b)) + name_b + data
    return b"\x00" + _uleb(len(body)) + body


def find_wizer():
    env = os.environ.get("WASMCORN_WIZER")
    if env:
        return env
    cache = os.environ.get("WASMCORN_CACHE", os.path.expanduser("~/.cache/wasmcorn"))
    for p in (os.path.join(cache, "wizer", "node_modules", ".bin", "wizer"), shutil.which("wizer")):
        if p and os.path.exists(p):
            return p
    return None


STUB_WAT = """(module
  ;; wasmcorn host calls are not available while wizer pre-initializes.
  (func (export "call") (param i32 i32 i32 i32 i32) (result i32) (i32.const -1))
  (func (export "result") (param i32 i32) (result i32) (i32.const -1)))
"""


def run_wizer(wizer, runtime_wasm, files_dir, out, tmp):
    stub = os.path.join(tmp, "wasmcorn-stub.wat")
    with open(stub, "w") as f:
        f.write(STUB_WAT)
    cmd = [wizer, runtime_wasm, "-o", out, "--allow-wasi", "--init-func", "wasmcorn_wizer_init",
           "--mapdir", "%s::%s" % (GUEST_ROOT, files_dir), "--preload", "wasmcorn=" + stub,
           "--inherit-stdio", "true"]
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.stderr.write(r.stdout.decode("utf-8", "replace"))
        raise BuildError("wizer failed (exit %d): the app could not be pre-initialized; the output above "
                         "shows the Python traceback" % r.returncode)
    log("wizer: pre-initialized in %.1f s" % (time.monotonic() - t0))


def build(app_dir, out, runtime, wizer_mode):
    runtime_wasm = os.path.join(runtime, "wasmcorn-python.wasm")
    if not os.path.exists(runtime_wasm):
        raise BuildError("%s is missing: build the runtime first (make python-runtime)" % runtime_wasm)
    with tempfile.TemporaryDirectory(prefix="wasmcorn-py-") as tmp:
        files = os.path.join(tmp, "files")
        cfg, deps, count = build_files(app_dir, runtime, files)
        data = zip_tree(files)
        wizer = find_wizer() if wizer_mode != "off" else None
        if wizer_mode == "on" and wizer is None:
            raise BuildError("wizer not found: install it with `npm install --prefix ~/.cache/wasmcorn/wizer "
                             "@bytecodealliance/wizer` or set WASMCORN_WIZER")
        base = runtime_wasm
        if wizer:
            base = os.path.join(tmp, "wizer.wasm")
            run_wizer(wizer, runtime_wasm, files, base, tmp)
        with open(base, "rb") as f:
            module = f.read()
        tmp_out = out + ".tmp"
        with open(tmp_out, "wb") as f:
            f.write(module)
            f.write(custom_section(SECTION, data))
        os.replace(tmp_out, out)
    log("built %s: %s, %d files (%.1f MiB), %s%s" % (
        out, cfg["name"], count, len(data) / 2**20, "pre-initialized" if wizer else "not pre-initialized",
        (", dependencies: " + ", ".join(deps)) if deps else ""))


APP_TEMPLATE = '''"""{name}: a wasmcorn Python plugin."""

import wasmcorn

app = wasmcorn.App(prefix="/{name}")


@app.route("/")
def index(request):
    return {{"plugin": "{name}", "hello": request.query.get("name", "world")}}


@app.route("/items/<int:item_id>", methods=["GET"])
def item(request, item_id):
    return {{"id": item_id}}
'''

PYPROJECT_TEMPLATE = '''[project]
name = "{name}"
# Installed distributions to bundle (pure Python), e.g. ["flask"].
dependencies = []

[tool.wasmcorn]
app = "app:app"
'''

MANIFEST_TEMPLATE = '''# {name}: the plugin's manifest; `wasmcorn build` installs it next to the
# module as {name}.toml. Without a routes key the plugin serves /{name} and
# /{name}/*. Grant what the app uses:
#
# [grants]
# databases = ["default"]
# queues = ["{name}"]
'''

TEST_TEMPLATE = '''"""Run with: /usr/bin/python3 -m pytest (with sdk-python on PYTHONPATH)."""

import app as plugin
from wasmcorn.testing import TestClient


def test_index():
    client = TestClient(plugin.app)
    r = client.get("/{name}/?name=you")
    assert r.status == 200
    assert r.get_json() == {{"plugin": "{name}", "hello": "you"}}
'''


def new(name, directory):
    if not re.match(r"^[a-z][a-z0-9_-]*$", name):
        raise BuildError("plugin name %r: use lower-case letters, digits, '-' and '_'" % name)
    if os.path.exists(directory) and os.listdir(directory):
        raise BuildError("%s exists and is not empty" % directory)
    os.makedirs(directory, exist_ok=True)
    for fname, tmpl in (("app.py", APP_TEMPLATE), ("pyproject.toml", PYPROJECT_TEMPLATE),
                        ("manifest.toml", MANIFEST_TEMPLATE), ("test_app.py", TEST_TEMPLATE)):
        with open(os.path.join(directory, fname), "w") as f:
            f.write(tmpl.format(name=name))
    log("created %s (build it with: %s build %s -o plugins/%s.wasm)" % (directory, sys.argv[0], directory, name))


def main(argv=None):
    if sys.version_info[:2] != (3, 11):
        sys.exit("wasmcorn_py.py needs CPython 3.11 (the runtime's bytecode), not %s; use /usr/bin/python3.11"
                 % sys.version.split()[0])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build APP_DIR into a plugin .wasm")
    b.add_argument("app_dir")
    b.add_argument("-o", "--out", required=True)
    b.add_argument("--runtime", default=DEFAULT_RUNTIME)
    b.add_argument("--wizer", choices=("auto", "on", "off"), default=os.environ.get("WASMCORN_PY_WIZER", "auto"),
                   help="pre-initialize with wizer: auto (when installed), on, off "
                        "(default $WASMCORN_PY_WIZER or auto)")
    fl = sub.add_parser("files", help="write the plugin's file tree (what the guest sees at /wasmcorn)")
    fl.add_argument("app_dir")
    fl.add_argument("out_dir")
    fl.add_argument("--runtime", default=DEFAULT_RUNTIME)
    n = sub.add_parser("new", help="scaffold a Python plugin")
    n.add_argument("name")
    n.add_argument("dir")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            build(args.app_dir, args.out, args.runtime, args.wizer)
        elif args.cmd == "files":
            if os.path.exists(args.out_dir) and os.listdir(args.out_dir):
                raise BuildError("%s exists and is not empty" % args.out_dir)
            cfg, deps, count = build_files(args.app_dir, args.runtime, args.out_dir)
            log("wrote %d files for %s to %s" % (count, cfg["name"], args.out_dir))
        else:
            new(args.name, args.dir)
    except BuildError as e:
        sys.exit("wasmcorn-py: error: %s" % e)


if __name__ == "__main__":
    main()
