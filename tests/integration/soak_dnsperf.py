# The soak: dnsperf at a fixed rate for a minute, hits and misses against knotd.
#
# It asserts no loss, flat memory and a clean log. Its own meson test (suite `soak`), run alone and
# only in the plain build; pytest leaves it out of the integration suite (the name does not start
# test_).
# SOAK_SECONDS=3600 makes it an hour (with `meson test -t 0`: the test's timeout is 300 s).
import os
import re
import subprocess
import time

import harness

SECONDS = int(os.environ.get("SOAK_SECONDS", "60"))
RATE = 5000  # queries a second
WARM_UP = min(15, SECONDS // 2)  # seconds: the cache fills, allocator pools settle
HOT = [f"svc{n}.ns{ns}.svc.cluster.local A" for ns in range(3) for n in range(10)] + \
      [f"_http._tcp.svc{n}.ns{ns}.svc.cluster.local SRV" for ns in range(3) for n in range(10)]
MISS_EVERY = 10  # one query in ten is for a name not asked for seconds: a miss, sent to knotd
MISS_NAMES = 2000  # more than the cache holds (--cache-size 1000), so each is evicted before it returns
MAX_LOSS = 0.001
MAX_RSS_GROWTH_KIB = 1024


def query_file(path):
    lines = []
    for i in range(MISS_NAMES * MISS_EVERY):
        if i % MISS_EVERY == 0:
            lines.append(f"m{i // MISS_EVERY}.wild.ns0.svc.cluster.local A")  # the zone's wildcard answers
        else:
            lines.append(HOT[i % len(HOT)])
    path.write_text("\n".join(lines) + "\n")
    return path


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def dnsperf_figure(output, label):
    match = re.search(rf"{label}:\s+(\d+)", output)
    assert match, f"no '{label}' in dnsperf's output:\n{output}"
    return int(match.group(1))


def test_soak_at_a_fixed_rate(knot, readyns, tmp_path):
    mport = harness.free_port()
    server = readyns(upstreams=[knot.port],
                     args=["--cache-size", "1000", "--log-level", "info", f"--metrics=127.0.0.1:{mport}"])
    perf = subprocess.Popen(["dnsperf", "-s", harness.HOST, "-p", str(server.port), "-d", str(query_file(tmp_path / "queries")),
                             "-l", str(SECONDS), "-Q", str(RATE), "-c", "4", "-t", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start, samples = time.monotonic(), []
    while perf.poll() is None:
        samples.append((time.monotonic() - start, rss_kib(server.pid)))
        time.sleep(1)
    output = perf.stdout.read()
    assert perf.returncode == 0, output
    sent, lost = dnsperf_figure(output, "Queries sent"), dnsperf_figure(output, "Queries lost")
    misses = harness.metric(harness.scrape(mport), "coredns_cache_misses_total")
    settled = [kib for t, kib in samples if t >= WARM_UP]
    growth = max(settled) - settled[0]
    print(f"soak: {sent} queries in {SECONDS} s, {lost} lost, {misses:.0f} misses; RSS {samples[0][1]} KiB at "
          f"the start, {settled[0]} KiB after warm-up, {max(settled)} KiB at most, {settled[-1]} KiB at the end\n{output}")
    assert sent >= RATE * SECONDS * 0.95, "dnsperf could not hold the rate"
    assert lost <= sent * MAX_LOSS
    assert misses >= sent / MISS_EVERY * 0.95, "the misses were answered from the cache: not the load intended"
    assert re.search(r"Response codes:\s+NOERROR \d+ \(100\.00%\)", output), "answers other than NOERROR"
    assert growth <= MAX_RSS_GROWTH_KIB, f"RSS grew {growth} KiB after warm-up: {samples}"
    assert server.alive()
    problems = [line for line in server.log().splitlines() if re.search(r"\[(warning|error|critical)\]", line)]
    assert not problems, "\n".join(problems)
