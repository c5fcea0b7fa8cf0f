#!/usr/bin/python3
"""Installs the build into a temporary DESTDIR and builds examples out of the tree against it.

The install is done with `meson install`; the libraries, headers and readyns.pc are checked to be in
place, and the examples are built through pkg-config only: the C example against the shared library,
the C++ one against the static library. Both then run against knotd serving the integration tests'
sample zones.

Usage: install_test.py BUILD_DIR  (environment: SOURCE_ROOT, SANITIZE, MESON, CC, CXX)
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE_ROOT = Path(os.environ.get("SOURCE_ROOT", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE_ROOT / "tests" / "integration"))
import harness  # noqa: E402  (knotd and the sample zones)

SANITIZE = [s for s in os.environ.get("SANITIZE", "none").split(",") if s and s != "none"]
SANITIZE_FLAGS = [f"-fsanitize={s}" for s in SANITIZE]
HEADERS = ["export.h", "options.hpp", "readyns.h", "resolver.hpp", "server.hpp"]


def run(argv, env=None, cwd=None):
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed ({result.returncode}):\n"
                         f"{result.stdout}\n{result.stderr}")
    return result.stdout


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    build = Path(argv[0])
    meson = os.environ.get("MESON") or shutil.which("meson")
    with tempfile.TemporaryDirectory(prefix="readyns-install-") as d:
        tmp = Path(d)
        dest = tmp / "dest"
        run([meson, "install", "-C", str(build), "--destdir", str(dest), "--no-rebuild", "--quiet"])

        pcs = list(dest.rglob("pkgconfig/readyns.pc"))
        if len(pcs) != 1:
            raise SystemExit(f"expected one readyns.pc under {dest}, found {pcs}")
        pc = pcs[0]
        prefix = next(line.split("=", 1)[1] for line in pc.read_text().splitlines()
                      if line.startswith("prefix="))
        libdir = pc.parent.parent
        for name in ["libreadyns.so", "libreadyns.a"]:
            if not (libdir / name).exists():
                raise SystemExit(f"{name} is not installed in {libdir}")
        includes = dest / prefix.lstrip("/") / "include" / "readyns"
        for header in HEADERS:
            if not (includes / header).exists():
                raise SystemExit(f"readyns/{header} is not installed in {includes}")

        # No sysroot: the .pc's prefix is pointed into the DESTDIR.
        def pkg_config(*args):
            env = dict(os.environ, PKG_CONFIG_PATH=str(pc.parent))
            return run(["pkg-config", f"--define-variable=prefix={dest}{prefix}", *args],
                       env=env).split()

        out = tmp / "out"
        out.mkdir()
        shutil.copy(SOURCE_ROOT / "examples/c/resolve.c", out)
        shutil.copy(SOURCE_ROOT / "examples/cpp/resolve.cpp", out / "resolve_cpp.cpp")
        cc = os.environ.get("CC") or "cc"
        cxx = os.environ.get("CXX") or "c++"
        run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", *SANITIZE_FLAGS, "resolve.c",
             *pkg_config("--cflags", "--libs", "readyns"), f"-Wl,-rpath,{libdir}", "-lpthread",
             "-o", "resolve"], cwd=out)
        # libreadyns.a with the system's shared libraries: its own Libs.private (depth 2 stops
        # before its requirements') and its private requirements' --libs; a plain --static would
        # ask for every system library's static archive too. -l:libreadyns.a, as -lreadyns would
        # take the .so next to it.
        own = [a for a in pkg_config("--static", "--maximum-traverse-depth=2", "--libs", "readyns")
               if a != "-lreadyns"]
        private = pkg_config("--print-requires-private", "readyns")
        static_libs = ["-l:libreadyns.a", *own, *pkg_config("--libs", *private)]
        run([cxx, "-std=c++20", "-Wall", "-Wextra", "-Werror", *SANITIZE_FLAGS, "resolve_cpp.cpp",
             *pkg_config("--cflags", "readyns", "libuv"), *static_libs,
             *pkg_config("--libs", "libuv"), "-o", "resolve_cpp"], cwd=out)
        needed = run(["readelf", "-d", str(out / "resolve_cpp")])
        if "libreadyns" in needed:
            raise SystemExit("the static build still needs libreadyns.so")

        env = dict(os.environ)
        if "address" in SANITIZE:
            env["ASAN_OPTIONS"] = "detect_leaks=0:verify_asan_link_order=0"
        knot = harness.Knot(tmp / "knot")
        try:
            upstream = f"127.0.0.1:{knot.port}"
            text = run([str(out / "resolve"), upstream, "www.example.org"], env=env)
            if "www.example.org. 30 A 192.0.2.10" not in text:
                raise SystemExit(f"the C example answered:\n{text}")
            text = run([str(out / "resolve_cpp"), upstream, "www.example.org", "hl0", "ns0",
                        "http"], env=env)
            if "www.example.org. 192.0.2.10" not in text or "10.244.1.5:8080" not in text:
                raise SystemExit(f"the static C++ example answered:\n{text}")
        finally:
            knot.terminate()
    print("installed; built out of tree with pkg-config (shared and static); both ran")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
