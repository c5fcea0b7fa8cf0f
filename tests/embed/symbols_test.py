#!/usr/bin/python3
"""Checks what libreadyns.so exports (nm -D --defined-only): the public API and nothing else.

The public API is the C functions readyns_* and the public C++ classes of include/readyns/;
nothing else means no ldns_, uv_, curl_ or spdlog symbol, nothing of readyns::core, ::k8s, ::net,
::wire, ... Also that every function readyns.h declares is there.

Usage: symbols_test.py LIBREADYNS_SO READYNS_H
"""
import re
import subprocess
import sys

ALLOWED = re.compile(r"^(readyns_[a-z_]+"
                     r"|readyns::(Resolver|Query|Subscription|Server)::[~A-Za-z_=]+\(.*"
                     r"|readyns::describe\(readyns::Errc\)"
                     r"|READYNS_\d+)$")
FORBIDDEN = re.compile(r"ldns_|\buv_|curl_|spdlog|fmt::|YAML|nlohmann"
                       r"|readyns::(core|k8s|net|wire|cache|upstream|config|embed|admin)::")


def exported(path):
    out = subprocess.run(["nm", "-D", "--defined-only", "--demangle", path], check=True,
                         capture_output=True, text=True).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            names.append(parts[2].split("@")[0])
    return names


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    names = exported(argv[0])
    # Judged by the name, not the parameter list (the loop constructor takes a uv_loop_s*).
    bad = [n for n in names if FORBIDDEN.search(n.split("(")[0]) or not ALLOWED.match(n)]
    if bad:
        print("exported but not API:\n  " + "\n  ".join(bad))
        return 1
    declared = set(re.findall(r"READYNS_API [^;]*?\b(readyns_[a-z_]+)\(", open(argv[1]).read()))
    missing = declared - set(names)
    if missing:
        print("declared in readyns.h but not exported: " + ", ".join(sorted(missing)))
        return 1
    for must in ("readyns::Resolver::resolve(", "readyns::Query::cancel()",
                 "readyns::Subscription::cancel()", "readyns::Server::run()"):
        if not any(n.startswith(must) for n in names):
            print(f"not exported: {must}")
            return 1
    print(f"{len(names)} symbols exported, all of them API ({len(declared)} C functions)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
