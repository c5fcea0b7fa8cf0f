#!/bin/bash
# Benchmarks readyns side by side with peer DNS caches (and the floors of bench/floor.c) on this machine.
#
# All of them forward to one knotd.
#
# Usage: bench/run.sh [SERVER...]        (default: floor floor-epoll floor-relay knotd readyns unbound dnsmasq
#                                         dnsdist pdns kresd)
#   Uses 127.0.0.1 only (free ports from 15300 up). Needs Debian's knot dnsperf bind9-dnsutils gcc python3-matplotlib,
#   plus whichever peers are installed (unbound dnsmasq-base dnsdist pdns-recursor knot-resolver); missing ones are
#   skipped with a note, and so is readyns when it is not built or does not start.
# Environment (all optional):
#   READYNS=path       binary to test (default: build-release/readyns, else build/readyns)
#   REPS=3 SECS=5      repetitions x seconds of each measurement; the median is reported
#   RETRIES=3          extra runs per round allowed to replace runs disturbed by other processes (NOISE_PCT=5 % of a CPU)
#   HIT_QPS=30000      offered load on the hit path and the ndots mix
#   MISS_QPS=10000     offered load on the miss path (every name new)
#   TTL=3600           zone TTL (and SOA minimum); every server is told to keep entries at least this long
#   CACHE=1000000      cache entries per server (bytes for unbound/kresd are sized to match)
#   FILL=1000000       distinct names asked of each cache after the timed runs, then its RSS is read (0: skip)
#   FILL_QPS=15000     rate of that fill
#   OUT=bench/out      where results.json, results.md, cost.png go
#   KEEP=1             keep the scratch directory (zones, configs, logs, raw.tsv) instead of deleting it
# Every server runs pinned to CPU 1, each on its own port, and the workloads go round them (see README.md);
# dnsperf and the upstream knotd run pinned to CPU 0.
# Takes about 20 minutes with the defaults on a quiet machine (a third of it the fills); runs disturbed by other processes are retried.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
REPS=${REPS:-3}
SECS=${SECS:-5}
HIT_QPS=${HIT_QPS:-30000}
MISS_QPS=${MISS_QPS:-10000}
RETRIES=${RETRIES:-3}
NOISE_PCT=${NOISE_PCT:-5}
TTL=${TTL:-3600}
CACHE=${CACHE:-1000000}
FILL=${FILL:-1000000}
FILL_QPS=${FILL_QPS:-15000}
OUT=${OUT:-$here/out}
PY=/usr/bin/python3   # Debian's, which has matplotlib (a pyenv python on PATH may not)
SERVER_CPU=1
LOAD_CPU=0
HZ=$(getconf CLK_TCK)
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(floor floor-epoll floor-relay knotd readyns unbound dnsmasq dnsdist pdns kresd)

for tool in dnsperf knotd knotc dig taskset ss cc; do
  command -v $tool >/dev/null || { echo "run.sh: $tool is missing (apt-get install knot dnsperf bind9-dnsutils gcc)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/readyns-bench.XXXXXX)
raw=$work/raw.tsv     # one line per measured repetition
notes=$work/notes.tsv # server <tab> free-text note (skipped, crashed, wrong answers, ...)
meta=$work/meta.tsv   # key <tab> value
: > "$raw"; : > "$notes"; : > "$meta"
pids=()               # every process this script started, so the trap stops exactly those

cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "scratch kept in $work"; else rm -rf "$work"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

note() { printf '%s\t%s\n' "$1" "$2" >> "$notes"; echo "  note: $1: $2"; }
metaset() { printf '%s\t%s\n' "$1" "$2" >> "$meta"; }

# A UDP+TCP port nobody listens on, from $1 upwards; other benches may share this machine.
free_port() {
  local p=$1
  while [ -n "$(ss -Hlnu "sport = :$p")$(ss -Hlnt "sport = :$p")" ]; do p=$((p + 1)); done
  echo $p
}
UP=$(free_port 15300)
SP=$(free_port $((UP + 1)))

# utime+stime of the whole process (all threads) in clock ticks; fields counted after the ")" ending comm.
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# CPU ticks used so far by every user-space process except this script (whose reaped children include dnsperf),
# the server $1 and knotd: own time plus reaped children's, so that the difference of two readings also counts
# processes that started or ended in between. (Per-process times are precise; /proc/stat's per-CPU tick samples
# are not, with bursty loads like a DNS server's.)
others_ticks() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v skip=" $$ $1 $knot_pid " '{
    pid = $1; sub(/.*\) /, "")
    if (index(skip, " " pid " ") || pid == 2 || $2 == 2) next   # ours, or a kernel thread
    s += $12 + $13 + $14 + $15
  } END {print s + 0}'
}
# Waits (at most $2 seconds) until other processes use less than NOISE_PCT % of a CPU over one second.
wait_quiet() {
  local a b
  for _ in $(seq "$2"); do
    a=$(others_ticks "$1"); sleep 1; b=$(others_ticks "$1")
    [ $(((b - a) * 100 / HZ)) -le "$NOISE_PCT" ] && return 0
  done
  return 0
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
alive() { kill -0 "$1" 2>/dev/null; }
upstream_queries() { knotc -s "$work/knot/knot.sock" stats mod-stats.request-protocol 2>/dev/null | awk -F'= ' '{s += $2} END {print s + 0}'; }

# Starts "$@" in the background, remembers its pid in $spid and in pids; the command must not fork away.
launch() {
  local log=$1; shift
  "$@" > "$log" 2>&1 &
  spid=$!
  pids+=("$spid")
}

stop_pid() {
  local p=$1
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 50); do alive "$p" || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  # Forget it, so that the exit trap never signals a pid the system has since given to someone else.
  local keep=() q
  for q in "${pids[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
  pids=("${keep[@]}")
}

# Waits until 127.0.0.1:$1 answers a known name correctly (or the process dies / 15 s pass); with a third
# argument "any", any reply will do (the floor echoes the query back without an answer).
wait_ready() {
  local port=$1 p=$2 want=10.96.0.1
  [ "${3:-}" = any ] && want=""
  for _ in $(seq 150); do
    alive "$p" || return 1
    if [ -n "$want" ]; then
      [ "$(dig +short +tries=1 +time=1 @127.0.0.1 -p "$port" svc0.ns0.svc.cluster.local A 2>/dev/null)" = "$want" ] && return 0
    else
      dig +tries=1 +time=1 @127.0.0.1 -p "$port" svc0.ns0.svc.cluster.local A 2>/dev/null | grep -q 'status:' && return 0
    fi
    sleep 0.1
  done
  return 1
}

# Checks a few answers so that a server answering fast but wrongly (SERVFAIL, REFUSED, empty) is caught.
# A dig that times out is a wrong answer, noted like the others (under set -e it would end the run unsaid).
check_answers() {
  local name=$1 port=$2 bad=0 q t want got st
  while read -r q t want; do
    got=$(dig +short +tries=2 +time=2 @127.0.0.1 -p "$port" "$q" "$t" 2>/dev/null | tail -1) || true
    [ "$got" = "$want" ] || { bad=1; note "$name" "wrong answer for $q $t: '$got' (want $want)"; }
  done < "$work/expect.txt"
  st=$(dig +tries=2 +time=2 @127.0.0.1 -p "$port" nosuch.ns0.svc.cluster.local A 2>/dev/null | sed -n 's/.*status: \([A-Z]*\),.*/\1/p') || true
  [ "$st" = NXDOMAIN ] || { bad=1; note "$name" "nosuch.ns0.svc.cluster.local gave $st, want NXDOMAIN"; }
  got=$(dig +short +tries=2 +time=2 @127.0.0.1 -p "$port" check-$RANDOM.$MISS_ZONE A 2>/dev/null) || true
  [ "$got" = 10.99.0.1 ] || { bad=1; note "$name" "wildcard name gave '$got', want 10.99.0.1"; }
  return $bad
}

# One dnsperf run pinned to the load CPU; sets: d_done d_qps d_lat_ms d_lost_pct d_bad (answers other than
# NOERROR/NXDOMAIN) d_elapsed. Extra arguments go to dnsperf.
perf() {
  local out
  out=$(taskset -c $LOAD_CPU dnsperf -s 127.0.0.1 -p "$1" -d "$2" -e -c 8 -t 2 "${@:3}" 2>&1) || true
  d_done=$(sed -n 's/.*Queries completed: *\([0-9]*\).*/\1/p' <<<"$out")
  d_qps=$(sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p' <<<"$out")
  d_lat_ms=$(sed -n 's/.*Average Latency (s): *\([0-9.]*\).*/\1/p' <<<"$out" | awk '{printf "%.3f", $1 * 1000}')
  d_lost_pct=$(sed -n 's/.*Queries lost: *[0-9]* (\([0-9.]*\)%).*/\1/p' <<<"$out")
  d_elapsed=$(sed -n 's/.*Run time (s): *\([0-9.]*\).*/\1/p' <<<"$out")
  d_bad=$(sed -n 's/.*Response codes: *//p' <<<"$out" | tr ',' '\n' |
    awk '$1 != "NOERROR" && $1 != "NXDOMAIN" && NF >= 2 {s += $2} END {print s + 0}')
  if [ -z "$d_done" ] || [ -z "$d_qps" ]; then
    d_done=0 d_qps=0 d_lat_ms=0 d_lost_pct=100 d_elapsed=0 d_bad=0
    echo "$out" | tail -3 >&2
  fi
}

# Warms a server's cache with every distinct query of a file, twice (the second pass catches any first-pass loss).
warm() {
  local port=$1 file=$2
  perf "$port" "$file" -n 1 -q 100 -Q 20000
  perf "$port" "$file" -n 1 -q 100 -Q 20000
}

# Measures one workload against the server (pid $2, port $3) once, for round ROUND, retrying up to RETRIES times
# while the run is disturbed; appends a line per run to raw.tsv.
#   measure NAME PID PORT WORKLOAD QPS(0 = unbounded) FILE|miss ROUND
# A run is "disturbed" when processes other than the server, dnsperf and knotd took more than NOISE_PCT % of a CPU
# during it (this machine may be shared with builds; the other servers, idle meanwhile, count too); the report
# takes medians over undisturbed runs only.
measure() {
  local name=$1 p=$2 port=$3 wl=$4 qps=$5 src=$6 round=$7 r=0 clean=0 file rate_args
  local t0 t1 u0 u1 o0 o1 cpu_us util foreign ok
  while [ $clean -lt 1 ] && [ $r -le "$RETRIES" ]; do
    r=$((r + 1))
    alive "$p" || return 1
    [ $r -gt 1 ] && wait_quiet "$p" 10   # the last run was disturbed: let the burst pass first
    file=$src
    if [ "$src" = miss ]; then
      # Names nobody has asked before: unique per run, enough that dnsperf never wraps around to repeat one.
      file=$work/miss-now.txt
      awk -v n=$((MISS_QPS * SECS * 13 / 10 + 1000)) -v pre="$RUNID-$name-$round-$r" -v z="$MISS_ZONE" \
        'BEGIN {for (i = 0; i < n; i++) printf "%s-%d.%s A\n", pre, i, z}' > "$file"
    fi
    rate_args=(-q 200)
    [ "$qps" -gt 0 ] && rate_args+=(-Q "$qps")
    [ "$src" = miss ] && rate_args=(-q 2000 -Q "$qps")   # room for the upstream round trip
    u0=$(upstream_queries); o0=$(others_ticks "$p"); t0=$(ticks "$p")
    perf "$port" "$file" -l "$SECS" "${rate_args[@]}"
    t1=$(ticks "$p") || return 1
    o1=$(others_ticks "$p"); u1=$(upstream_queries)
    cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$d_done" 'BEGIN {printf "%.2f", (n ? d / hz * 1e6 / n : 0)}')
    util=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v s="$d_elapsed" 'BEGIN {printf "%.0f", (s > 0 ? d / hz / s * 100 : 0)}')
    foreign=$(awk -v d=$((o1 - o0)) -v hz="$HZ" -v s="$d_elapsed" \
      'BEGIN {printf "%.0f", (s > 0 ? d / hz / s * 100 : 0)}')
    ok=1
    [ "$foreign" -le "$NOISE_PCT" ] && clean=$((clean + 1)) || ok=0
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$wl" "$round" "$qps" "$d_qps" \
      "$d_done" "$cpu_us" "$d_lat_ms" "$d_lost_pct" "$d_bad" "$util" "$((u1 - u0))" "$foreign" "$ok" >> "$raw"
    printf '  %-8s %-6s round %s: %8.0f qps answered, %6s us/query, %7s ms avg, %5s%% lost, server CPU %3s%%, others %s%%%s\n' \
      "$name" "$wl" "$round" "$d_qps" "$cpu_us" "$d_lat_ms" "$d_lost_pct" "$util" "$foreign" "$([ $ok = 1 ] || echo ' (disturbed)')"
  done
}

# Asks the cache FILL names it has never seen (each a wildcard answer: one A record), so that it holds that
# many more entries if its limits allow, and records its RSS and how many of them were answered.
fill() {
  local name=$1 p=$2 port=$3 file=$work/fill.txt
  [ -s "$file" ] || awk -v n="$FILL" -v z="$MISS_ZONE" 'BEGIN {for (i = 0; i < n; i++) printf "fill-%d.%s A\n", i, z}' > "$file"
  echo "  $name: fill $FILL names at $FILL_QPS qps"
  perf "$port" "$file" -n 1 -q 2000 -Q "$FILL_QPS"
  printf '%s\tfill_answered\t%s\n' "$name" "$d_done" >> "$meta"
  printf '%s\trss_after_fill_kib\t%s\n' "$name" "$(rss_kib "$p")" >> "$meta"
}

# ---------------------------------------------------------------- setup
RUNID=r$(date +%s)
MISS_ZONE=miss.cluster.local
echo "scratch: $work; upstream knotd on 127.0.0.1:$UP, servers under test on 127.0.0.1 from port $SP"
"$PY" "$here/gen.py" "$work" "$TTL"
sort -u "$work/hit.txt" > "$work/hit.uniq"
sort -u "$work/ndots.txt" > "$work/ndots.uniq"
cc -O2 -Wall -Wextra -pthread -o "$work/floor" "$here/floor.c"

metaset started "$(date -u +%FT%TZ)"
metaset loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
metaset cpu "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
metaset kernel "$(uname -r)"
metaset settings "reps=$REPS secs=$SECS hit_qps=$HIT_QPS miss_qps=$MISS_QPS ttl=$TTL cache=$CACHE noise_pct=$NOISE_PCT fill=$FILL"
metaset dnsperf "$(dnsperf -h 2>&1 | sed -n 's/^Version //p')"

mkdir -p "$work/knot"
cat > "$work/knot/knot.conf" <<EOF
server:
    listen: 127.0.0.1@$UP
    rundir: $work/knot
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: $work/knot/knot.sock
database:
    storage: $work/knot
log:
  - target: stderr
    any: warning
# Counts the queries that reach the upstream, to prove the hit path is served from cache.
mod-stats:
  - id: count
    request-protocol: on
    server-operation: off
    request-bytes: off
    response-bytes: off
    response-code: off
template:
  - id: default
    global-module: mod-stats/count
zone:
  - domain: cluster.local
    file: $work/cluster.local.zone
  - domain: example.org
    file: $work/example.org.zone
EOF
launch "$work/knot/log" taskset -c $LOAD_CPU knotd -c "$work/knot/knot.conf"
knot_pid=$spid
wait_ready "$UP" "$knot_pid" || { echo "knotd did not start:"; cat "$work/knot/log"; exit 1; }
metaset version_knotd "$(knotd --version | sed 's/.*version //')"

# ---------------------------------------------------------------- each server
start_server() {  # start_server NAME: starts it on $SP pinned to the server CPU; sets spid and version, or returns 1
  local name=$1 w=$work/$1
  mkdir -p "$w"
  case $name in
  readyns)
    local bin=${READYNS:-}
    if [ -z "$bin" ]; then
      for c in "$repo/build-release/readyns" "$repo/build/readyns"; do [ -x "$c" ] && { bin=$c; break; }; done
    fi
    [ -n "$bin" ] && [ -x "$bin" ] || { note readyns "no binary (set READYNS or build build-release/readyns)"; return 1; }
    version="${bin#"$repo"/}"
    launch "$w/log" taskset -c $SERVER_CPU "$bin" --listen 127.0.0.1:$SP --upstream 127.0.0.1:$UP --threads 1 \
      --cache-size "$CACHE" --cache-memory 1024 --max-ttl "$TTL" --neg-ttl "$TTL" --log-level warn ;;
  unbound)
    command -v unbound >/dev/null || { note unbound "not installed"; return 1; }
    version=$(unbound -V | sed -n 's/^Version //p')
    cat > "$w/unbound.conf" <<EOF
server:
  interface: 127.0.0.1@$SP
  num-threads: 1
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$w"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "iterator"
  qname-minimisation: no
  msg-cache-size: 256m
  rrset-cache-size: 512m
  cache-max-ttl: 86400
  cache-max-negative-ttl: $TTL
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$UP
EOF
    launch "$w/log" taskset -c $SERVER_CPU unbound -d -c "$w/unbound.conf" ;;
  dnsmasq)
    command -v dnsmasq >/dev/null || { note dnsmasq "not installed"; return 1; }
    version=$(dnsmasq --version | sed -n 's/^Dnsmasq version \([^ ]*\).*/\1/p')
    # Negative answers are cached for the SOA minimum (= TTL); --dns-forward-max lifts the default 150 in flight.
    launch "$w/log" taskset -c $SERVER_CPU dnsmasq -k -C /dev/null --port=$SP --listen-address=127.0.0.1 \
      --bind-interfaces --no-resolv --no-hosts --no-poll --server=127.0.0.1#$UP --cache-size="$CACHE" \
      --dns-forward-max=5000 --pid-file= --user=root --log-facility=- ;;
  dnsdist)
    command -v dnsdist >/dev/null || { note dnsdist "not installed"; return 1; }
    version=$(dnsdist --version 2>&1 | sed -n 's/^dnsdist \([^ ]*\).*/\1/p')
    cat > "$w/dnsdist.conf" <<EOF
setLocal("127.0.0.1:$SP")
-- Fixed "up" state: no health-check queries hitting the upstream during the hit-path runs.
newServer({address="127.0.0.1:$UP"}):setUp()
getPool(""):setCache(newPacketCache($CACHE, {maxTTL=86400, maxNegativeTTL=$TTL}))
setSecurityPollSuffix("")
EOF
    launch "$w/log" taskset -c $SERVER_CPU dnsdist --supervised --disable-syslog -C "$w/dnsdist.conf" ;;
  pdns)
    command -v pdns_recursor >/dev/null || { note pdns "not installed"; return 1; }
    version=$(pdns_recursor --version 2>&1 | sed -n 's/.*PowerDNS Recursor \([^ ]*\).*/\1/p' | head -1)
    : > "$w/recursor.conf"
    # One worker thread answering its own socket (no distributor thread); dont-query is emptied so that the
    # loopback upstream is allowed; no security polling so nothing leaves the machine.
    launch "$w/log" taskset -c $SERVER_CPU pdns_recursor --daemon=no --config-dir="$w" --socket-dir="$w" \
      --local-address=127.0.0.1 --local-port=$SP --forward-zones-recurse=.=127.0.0.1:$UP --threads=1 \
      --pdns-distributes-queries=no --dnssec=off --disable-syslog --allow-from=127.0.0.0/8 --dont-query= \
      --security-poll-suffix= --max-cache-entries="$CACHE" --max-packetcache-entries="$CACHE" \
      --max-cache-ttl=86400 --max-negative-ttl="$TTL" --packetcache-ttl="$TTL" --loglevel=3 ;;
  kresd)
    command -v kresd >/dev/null || { note kresd "not installed"; return 1; }
    version=$(kresd --version | sed -n 's/.*version //p')
    cat > "$w/config.lua" <<EOF
net.listen('127.0.0.1', $SP, { kind = 'dns' })
cache.open(1024 * MB, 'lmdb://$w/cache')
trust_anchors.remove('.')
-- These would send their own queries (root priming, trust-anchor signalling, clock-skew probes).
for _, m in ipairs({'priming', 'ta_signal_query', 'ta_sentinel', 'detect_time_skew'}) do pcall(modules.unload, m) end
-- FORWARD, not STUB: kresd 5.6 in STUB mode re-asks the upstream for cached names every few seconds.
policy.add(policy.all(policy.FORWARD('127.0.0.1@$UP')))
EOF
    launch "$w/log" taskset -c $SERVER_CPU kresd -n -q -c "$w/config.lua" "$w" ;;
  *) note "$name" "unknown server"; return 1 ;;
  esac
}

# Every server runs from the start, each on its own port and pinned to the server CPU, idle but for its turn: the
# workloads go round them, one run of each per round, so that drift in these shared VMs falls on all alike.
declare -A port pid kind
running=()   # in the order given, those that started and still answer
next_port=$SP
for name in "${servers[@]}"; do
  SP=$(free_port "$next_port")
  case $name in
  floor | floor-epoll | floor-relay)
    # floor echoes from a blocking recvmmsg, floor-epoll is woken by epoll_wait, floor-relay forwards to
    # knotd; the relay answers correctly, so it is checked like a cache, and asked only on the miss path.
    case $name in
    floor) mode=() k=floor ;;
    floor-epoll) mode=(--epoll) k=floor ;;
    floor-relay) mode=(--relay "$UP") k=relay ;;
    esac
    launch "$work/$name.log" taskset -c $SERVER_CPU "$work/floor" 127.0.0.1 "$SP" "${mode[@]}"
    metaset "version_$name" "bench/floor.c ${mode[*]}"
    if wait_ready "$SP" "$spid" "$([ $k = floor ] && echo any)"; then
      port[$name]=$SP pid[$name]=$spid kind[$name]=$k; running+=("$name")
    else
      note "$name" "did not start"; stop_pid "$spid"
    fi ;;
  knotd)
    # The upstream itself, queried directly: the reference for the miss path's added latency.
    port[knotd]=$UP pid[knotd]=$knot_pid kind[knotd]=auth; running+=(knotd) ;;
  *)
    version=""
    start_server "$name" || continue
    metaset "version_$name" "$version"
    if wait_ready "$SP" "$spid"; then
      port[$name]=$SP pid[$name]=$spid kind[$name]=cache; running+=("$name")
    else
      if alive "$spid"; then st="did not answer correctly within 15 s"
      else st="exited (status $(wait "$spid" >/dev/null 2>&1; echo $?)) before answering"; fi
      note "$name" "$st; log tail: $(tail -3 "$work/$name/log" | tr '\n' ' ')"
      stop_pid "$spid"
    fi ;;
  esac
  next_port=$((SP + 1))
done
echo "servers: $(for n in "${running[@]}"; do printf '%s on %s  ' "$n" "${port[$n]}"; done)"
for name in "${running[@]}"; do
  if [ "${kind[$name]}" != floor ] && ! check_answers "$name" "${port[$name]}"; then
    note "$name" "answers differ from the zone; its figures are shown but suspect"
  fi
done

# One run of a workload against each running server in turn; a server that dies leaves the rounds with a note.
# The upstream sits on the load CPU, except while it is itself the server under test.
round() {  # round WORKLOAD QPS FILE|miss ROUND
  local name cpu still=()
  for name in "${running[@]}"; do
    if [ "${kind[$name]}" = relay ] && [ "$1" != miss ]; then still+=("$name"); continue; fi
    if [ "$name" = knotd ]; then cpu=$SERVER_CPU; else cpu=$LOAD_CPU; fi
    taskset -a -p -c $cpu "$knot_pid" > /dev/null
    if measure "$name" "${pid[$name]}" "${port[$name]}" "$1" "$2" "$3" "$4"; then
      still+=("$name")
    else
      note "$name" "died during the $1 workload"
      stop_pid "${pid[$name]}"   # reaped and forgotten, so the exit trap signals no pid reused since
    fi
  done
  taskset -a -p -c $LOAD_CPU "$knot_pid" > /dev/null
  running=("${still[@]}")
}
rounds() {  # rounds WORKLOAD QPS FILE|miss
  local r
  echo "== $1"
  for r in $(seq "$REPS"); do round "$1" "$2" "$3" "$r"; done
}

wait_quiet "" 30   # a build or test run elsewhere on the machine would skew the first figures
for name in "${running[@]}"; do [ "${kind[$name]}" = relay ] || warm "${port[$name]}" "$work/hit.uniq"; done
rounds hit "$HIT_QPS" "$work/hit.txt"
for name in "${running[@]}"; do [ "${kind[$name]}" = relay ] || warm "${port[$name]}" "$work/ndots.uniq"; done
rounds ndots "$HIT_QPS" "$work/ndots.txt"
# Memory once the hit and ndots working sets are cached (before the miss path fills the caches further).
for name in "${running[@]}"; do printf '%s\trss_kib\t%s\n' "$name" "$(rss_kib "${pid[$name]}")" >> "$meta"; done
rounds peak 0 "$work/hit.txt"
# The echoing floors' figures at the miss rate are the kernel's share of a query at that lower load;
# floor-relay's is the least a forwarder costs per miss.
rounds miss "$MISS_QPS" miss
for name in "${running[@]}"; do printf '%s\trss_after_miss_kib\t%s\n' "$name" "$(rss_kib "${pid[$name]}")" >> "$meta"; done
if [ "$FILL" -gt 0 ]; then
  echo "== fill"
  for name in "${running[@]}"; do
    if [ "${kind[$name]}" = cache ]; then fill "$name" "${pid[$name]}" "${port[$name]}"; fi
  done
fi
for name in "${running[@]}"; do
  alive "${pid[$name]}" || note "$name" "exited after the run"
  [ "$name" = knotd ] || stop_pid "${pid[$name]}"
done

metaset loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
metaset finished "$(date -u +%FT%TZ)"
mkdir -p "$OUT"
"$PY" "$here/report.py" "$work" "$OUT"
