#!/usr/bin/python3
"""Builds an example in examples/ against the built libreadyns.so and runs it against knotd.

It builds as an embedder would (cc for C, go build with cgo for Go; the C++ ones are meson targets),
and knotd serves the integration tests' sample zones.

Usage: examples_test.py c|go|cpp|docs  (environment: SOURCE_ROOT, LIB_DIR, SANITIZE, CPP_EXAMPLE, GO)
Exits 77 (skipped) when the toolchain the example needs is missing.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE_ROOT = Path(os.environ.get("SOURCE_ROOT", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE_ROOT / "tests" / "integration"))
import harness  # noqa: E402  (knotd and the sample zones)

LIB_DIR = os.environ.get("LIB_DIR", str(SOURCE_ROOT / "build"))
SANITIZE = [s for s in os.environ.get("SANITIZE", "none").split(",") if s and s != "none"]
SANITIZE_FLAGS = [f"-fsanitize={s}" for s in SANITIZE]
# What every example must print for the sample zones.
WWW_V4 = "www.example.org. 30 1 192.0.2.10"
WWW_V6 = "www.example.org. 30 28 2001:db8::10"
HL0 = ["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5"]


def run(argv, env=None, check=True):
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed ({result.returncode}):\n"
                         f"{result.stdout}\n{result.stderr}")
    return result


def run_env():
    env = dict(os.environ)
    if "address" in SANITIZE:
        # The example's own runtime (Go's, or a plain C program's) was not built to be checked.
        env["ASAN_OPTIONS"] = "detect_leaks=0:verify_asan_link_order=0"
    return env


def expect(output, lines):
    for line in lines:
        if line not in output.splitlines():
            raise SystemExit(f"expected the line {line!r} in:\n{output}")


def c_example(tmp, upstream):
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not cc:
        print("no C compiler")
        return 77
    binary = tmp / "resolve"
    run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", *SANITIZE_FLAGS,
         f"-I{SOURCE_ROOT / 'include'}", str(SOURCE_ROOT / "examples/c/resolve.c"),
         f"-L{LIB_DIR}", f"-Wl,-rpath,{LIB_DIR}", "-lreadyns", "-lpthread", "-o", str(binary)])
    out = run([binary, upstream, "www.example.org", "AAAA"], env=run_env()).stdout
    expect(out, ["rcode 0", "www.example.org. 30 AAAA 2001:db8::10"])
    out = run([binary, upstream, "-e", "hl0", "ns0", "http"], env=run_env()).stdout
    expect(out, [f"{ip} 8080 -" for ip in HL0])
    nx = run([binary, upstream, "nx.example.org"], env=run_env(), check=False)
    if nx.returncode != 1 or "rcode 3" not in nx.stdout:
        raise SystemExit(f"NXDOMAIN should exit 1 with rcode 3:\n{nx.stdout}{nx.stderr}")
    print("C example: built and ran")
    return 0


def go_example(tmp, upstream):
    go = os.environ.get("GO") or shutil.which("go")
    if not go or not Path(go).exists():
        print("no Go toolchain (apt-get install golang-go)")
        return 77
    if "thread" in SANITIZE:
        # Go's runtime and TSan's do not mix outside `go build -race`.
        print("skipped under ThreadSanitizer")
        return 77
    env = dict(os.environ,
               GOCACHE=str(tmp / "gocache"), GOPATH=str(tmp / "gopath"), GOFLAGS="-mod=mod",
               GOPROXY="off", GO111MODULE="on", CGO_ENABLED="1", GOTELEMETRY="off",
               CGO_CFLAGS=f"-I{SOURCE_ROOT / 'include'} -O2 -g",
               CGO_LDFLAGS=" ".join([f"-L{LIB_DIR}", f"-Wl,-rpath,{LIB_DIR}", *SANITIZE_FLAGS]))
    binary = tmp / "resolve-go"
    run([go, "build", "-o", str(binary), "."], env=env)
    out = run([binary, "-upstream", upstream, "-endpoints", "hl0/ns0/http", "www.example.org"],
              env=run_env()).stdout
    expect(out, [WWW_V4, WWW_V6] + [f'endpoint {ip} 8080 ""' for ip in HL0])
    print("Go example: built and ran")
    return 0


def cpp_example(tmp, upstream):
    binary = os.environ["CPP_EXAMPLE"]
    out = run([binary, upstream, "www.example.org", "hl0", "ns0", "http"], env=run_env()).stdout
    expect(out, ["www.example.org. 192.0.2.10"] + [f"{ip}:8080" for ip in HL0])
    print("C++ example: ran")
    return 0


def docs_examples(tmp):
    """Compiles and links every program (a ```cpp block with a main) in docs/api.md and the
    README's Embedding section, so the examples people copy keep building."""
    blocks = []
    for doc in ("docs/api.md", "README.md"):
        text = (SOURCE_ROOT / doc).read_text()
        found = [b for b in re.findall(r"```cpp\n(.*?)```", text, re.S) if "int main" in b]
        if not found:
            raise SystemExit(f"no example program in {doc}")
        blocks += found
    uv = run(["pkg-config", "--cflags", "--libs", "libuv"]).stdout.split()
    cxx = os.environ.get("CXX") or "c++"
    for n, block in enumerate(blocks):
        source = tmp / f"doc{n}.cpp"
        source.write_text(block)
        run([cxx, "-std=c++20", "-Wall", "-Wextra", "-Werror", *SANITIZE_FLAGS,
             f"-I{SOURCE_ROOT / 'include'}", str(source), f"-L{LIB_DIR}", "-lreadyns", *uv,
             "-o", str(tmp / f"doc{n}")])
    print(f"docs/api.md and README.md: {len(blocks)} example program(s) compiled and linked")
    return 0


def main(argv):
    examples = {"c": c_example, "go": go_example, "cpp": cpp_example, "docs": None}
    if len(argv) != 1 or argv[0] not in examples:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="readyns-examples-") as d:
        tmp = Path(d)
        if argv[0] == "docs":
            return docs_examples(tmp)
        knot = harness.Knot(tmp / "knot")
        try:
            if argv[0] == "go":
                os.chdir(SOURCE_ROOT / "examples/go")  # go build works in the module's folder
            return examples[argv[0]](tmp, f"127.0.0.1:{knot.port}")
        finally:
            knot.terminate()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
