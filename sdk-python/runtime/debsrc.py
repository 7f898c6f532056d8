"""Print deb-src entries mirroring this machine's Debian 'deb' entries.

Used by build.sh when `apt-cache showsrc` knows no source packages: the
CPython and zlib source packages are fetched from the same suites the
machine already installs binaries from. Only entries for the running
release's codename (bookworm, bookworm-updates, bookworm-security...) are
mirrored, so third-party repositories without sources are left alone.
Output is deb822 (a .sources file) on stdout.
"""

import glob
import re
import sys


def codename():
    with open("/etc/os-release", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    sys.exit("debsrc: VERSION_CODENAME missing from /etc/os-release")


def ours(suites, name):
    return any(s == name or s.startswith(name + "-") or s.startswith(name + "/") for s in suites)


def from_deb822(path, name):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                fields[m.group(1).lower()] = m.group(2).strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        if not ours(suites, name):
            continue
        out = ["Types: deb-src"]
        for line in stanza.splitlines():
            if re.match(r"^(URIs|Suites|Components|Signed-By|Trusted):", line, re.I):
                out.append(line)
        yield "\n".join(out)


def from_list(path, name):
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split("#", 1)[0].split()
            if len(parts) < 3 or parts[0] != "deb":
                continue
            rest = parts[1:]
            opts = []
            if rest[0].startswith("["):
                while rest and not rest[0].endswith("]"):
                    opts.append(rest.pop(0))
                opts.append(rest.pop(0))
            uri, suite, comps = rest[0], rest[1], rest[2:]
            if not ours([suite], name):
                continue
            yield "\n".join(["Types: deb-src", "URIs: " + uri, "Suites: " + suite,
                             "Components: " + " ".join(comps)])


def main():
    name = codename()
    entries = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        if not path.endswith("wasmcorn-deb-src.sources"):
            entries.extend(from_deb822(path, name))
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            entries.extend(from_list(path, name))
        except FileNotFoundError:
            pass
    if not entries:
        sys.exit("debsrc: no Debian 'deb' entries for %s found to mirror" % name)
    print("# Written by wasmcorn sdk-python/runtime/build.sh: sources of the\n"
          "# python3.11 and zlib packages, built for wasm32-wasi.\n")
    print("\n\n".join(entries))


if __name__ == "__main__":
    main()
