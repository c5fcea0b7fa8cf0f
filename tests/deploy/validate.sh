#!/bin/sh
# Offline validation of deploy/; see validate.mjs for what is checked. Runs from any directory.
#
# It covers the Kubernetes manifests, the kustomize builds, the node-local setup script and the
# Dockerfile.
#
# Needs node (>= 18) and npm; the first run (and any run after package-lock.json changes)
# installs the pinned packages into tests/deploy/node_modules with `npm ci`, which needs the
# npm registry. Renders the kustomizations with `kubectl kustomize` or `kustomize build` when
# either is installed (READYNS_KUSTOMIZE="cmd args" picks another); without them those checks
# are reported as skipped.
# READYNS_BIN names the readyns binary that judges the configs and flags the manifests give it
# (`readyns --check-config`); `meson test deploy-manifests` sets it to the built one.
# Exit status: 0 when every check passed, 1 otherwise. Last line: "N passed, N failed".
set -eu

here=$(cd "$(dirname "$0")" && pwd -P)
cd "$here"

fail() {
  echo "deploy validation: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

command -v node >/dev/null 2>&1 || fail "node is not installed (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || fail "npm is not installed (Debian: apt-get install npm)"

# npm ci once per lock file: the stamp holds the checksum of the lock it installed.
want=$(cksum <package-lock.json)
stamp=node_modules/.readyns-lock-stamp
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # One installer at a time (meson may start several test runs).
  exec 9>"$here/.npm-ci.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "deploy validation: npm ci (tests/deploy/node_modules)"
    npm ci --no-audit --no-fund --loglevel=error >&2 || fail "npm ci failed"
    echo "$want" >"$stamp"
  fi
  exec 9>&-
fi

exec node "$here/validate.mjs"
