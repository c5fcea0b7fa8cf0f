#!/usr/bin/python3
"""Turns run.sh's raw measurements into results.json, results.md and the cost.png bar chart.

results.md is also printed.

Usage: report.py WORKDIR OUTDIR   (WORKDIR holds raw.tsv, meta.tsv and notes.tsv written by run.sh)
"""
import json
import os
import statistics
import sys

WORKLOADS = ("hit", "ndots", "miss")
FIELDS = ("offered_qps", "answered_qps", "completed", "cpu_us_per_query", "latency_ms", "lost_pct",
          "bad_rcodes", "server_cpu_pct", "upstream_queries", "others_cpu_pct", "undisturbed")
LABEL = {"floor": "floor (bench/floor.c)", "floor-epoll": "epoll floor (floor.c --epoll)",
         "floor-relay": "relay floor (floor.c --relay)", "knotd": "knotd (upstream, direct)", "readyns": "readyns",
         "unbound": "unbound", "dnsmasq": "dnsmasq", "dnsdist": "dnsdist", "pdns": "pdns-recursor",
         "kresd": "knot-resolver"}
PEERS = ("unbound", "dnsmasq", "dnsdist", "pdns", "kresd")
ECHOES = ("floor", "floor-epoll")   # answer without an upstream: no miss latency, no cache


def read_tsv(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def load(work):
    runs = {}   # server -> workload -> [rep dicts]
    order = []
    for row in read_tsv(os.path.join(work, "raw.tsv")):
        server, wl, rep = row[0], row[1], int(row[2])
        rec = {"rep": rep}
        for k, v in zip(FIELDS, row[3:]):
            rec[k] = float(v)
        runs.setdefault(server, {}).setdefault(wl, []).append(rec)
        if server not in order:
            order.append(server)
    meta, per_server = {}, {}
    for row in read_tsv(os.path.join(work, "meta.tsv")):
        if len(row) == 3:   # server <tab> key <tab> value
            per_server.setdefault(row[0], {})[row[1]] = float(row[2])
        elif row[0].startswith("version_"):
            per_server.setdefault(row[0][len("version_"):], {})["version"] = row[1]
        else:
            meta[row[0]] = row[1]
    notes = {}
    for server, text in read_tsv(os.path.join(work, "notes.tsv")):
        notes.setdefault(server, []).append(text)
        if server not in order and server in LABEL:
            order.append(server)
    started = list(per_server)   # meta.tsv names each server's version as it starts
    order.sort(key=lambda s: started.index(s) if s in started else len(started))
    return runs, meta, per_server, notes, order


def medians(reps):
    # Median per figure over the undisturbed runs (all runs if none was): one odd run does not move it.
    quiet = [r for r in reps if r["undisturbed"]] or reps
    m = {k: statistics.median(r[k] for r in quiet) for k in FIELDS}
    m["runs_used"] = len(quiet)
    m["runs_disturbed"] = sum(1 for r in reps if not r["undisturbed"])
    return m


def fmt(v, digits=1, unit=""):
    return "–" if v is None else f"{v:.{digits}f}{unit}"


def build(work):
    runs, meta, per_server, notes, order = load(work)
    servers = {}
    for s in order:
        entry = {"label": LABEL.get(s, s), "version": per_server.get(s, {}).get("version", ""),
                 "rss_kib": per_server.get(s, {}).get("rss_kib"),
                 "rss_after_miss_kib": per_server.get(s, {}).get("rss_after_miss_kib"),
                 "rss_after_fill_kib": per_server.get(s, {}).get("rss_after_fill_kib"),
                 "fill_answered": per_server.get(s, {}).get("fill_answered"),
                 "notes": notes.get(s, []), "workloads": {}}
        for wl, reps in runs.get(s, {}).items():
            entry["workloads"][wl] = {"median": medians(reps), "reps": reps}
        servers[s] = entry

    def cost(s, wl):
        w = servers.get(s, {}).get("workloads", {}).get(wl)
        return w["median"]["cpu_us_per_query"] if w else None

    def med(s, wl, k):
        w = servers.get(s, {}).get("workloads", {}).get(wl)
        return w["median"][k] if w else None

    ratios = {}
    if cost("readyns", "hit") is not None:
        for p in PEERS:
            r = {}
            for wl in WORKLOADS:
                a, b = cost("readyns", wl), cost(p, wl)
                r[wl] = round(a / b, 3) if a and b else None
            if any(v is not None for v in r.values()):
                ratios[p] = r
    return {"meta": meta, "servers": servers, "ratios_readyns_over_peer": ratios}, cost, med


def added_miss_latency_ms(med, s):
    """Latency a forwarding server adds on a miss over asking knotd directly; None for knotd and the echoes."""
    lat, direct = med(s, "miss", "latency_ms"), med("knotd", "miss", "latency_ms")
    if lat is None or direct is None or s == "knotd" or s in ECHOES:
        return None
    return lat - direct


def markdown(res, cost, med):
    meta, servers = res["meta"], res["servers"]
    settings = dict(kv.split("=", 1) for kv in meta.get("settings", "").split() if "=" in kv)
    out = ["# readyns bench results", "",
           f"Run {meta.get('started', '?')} → {meta.get('finished', '?')}; {meta.get('settings', '')}; "
           f"dnsperf {meta.get('dnsperf', '?')}; CPU: {meta.get('cpu', '?')}; kernel {meta.get('kernel', '?')}; "
           f"load average at start {meta.get('loadavg_start', '?')}, at end {meta.get('loadavg_end', '?')}.",
           "Every server pinned to CPU 1, dnsperf and the upstream knotd to CPU 0; the runs go round the servers, "
           "one run each per round. Each figure is the median of the rounds. CPU µs/query = server's utime+stime "
           "over the run ÷ answered queries.", "",
           "## CPU cost per answered query (µs) and latency", "",
           "| server | version | hit @fixed qps | ndots mix @fixed qps | miss @fixed qps | hit latency ms | "
           "ndots latency ms | miss latency ms (added over knotd direct) | lost % hit/ndots/miss |",
           "|---|---|---|---|---|---|---|---|---|"]
    for s, e in servers.items():
        if not e["workloads"]:
            continue
        miss_lat = med(s, "miss", "latency_ms")
        added = ""
        if (a := added_miss_latency_ms(med, s)) is not None:
            added = f" ({a:+.2f})"
        lost = "/".join(fmt(med(s, wl, "lost_pct"), 2) for wl in WORKLOADS)
        out.append(f"| {e['label']} | {e['version']} | {fmt(cost(s, 'hit'))} | {fmt(cost(s, 'ndots'))} | "
                   f"{fmt(cost(s, 'miss'))} | {fmt(med(s, 'hit', 'latency_ms'), 3)} | "
                   f"{fmt(med(s, 'ndots', 'latency_ms'), 3)} | {fmt(miss_lat, 3)}{added} | {lost} |")
    out += ["", "The echoing floors' miss figures are their echo at the miss rate: the kernel's share of a query at "
            "that lower load (fewer queries per wake-up), not a cache miss. The relay floor relays every query "
            "to knotd and back from two threads blocked in recvmmsg: the least any forwarder costs per miss.", "",
            "## Memory, peak throughput, cache check", "",
            "| server | RSS after warm-up MiB | RSS after miss runs MiB | "
            f"RSS after {settings.get('fill', '0')} more names MiB (names answered) | peak qps (server CPU %) | "
            "upstream queries during measured hit+ndots runs | answers other than NOERROR/NXDOMAIN | "
            "disturbed runs (of all runs) |",
            "|---|---|---|---|---|---|---|---|"]
    for s, e in servers.items():
        if not e["workloads"]:
            continue
        rss = e["rss_kib"] / 1024 if e["rss_kib"] else None
        rss2 = e["rss_after_miss_kib"] / 1024 if e["rss_after_miss_kib"] else None
        rss3 = e["rss_after_fill_kib"] / 1024 if e["rss_after_fill_kib"] else None
        filled = f"{fmt(rss3)} ({e['fill_answered']:,.0f})" if rss3 is not None else "–"
        pq, pu = med(s, "peak", "answered_qps"), med(s, "peak", "server_cpu_pct")
        peak = f"{pq:,.0f} ({pu:.0f}%)" if pq is not None else "–"
        up = "n/a" if s in ECHOES + ("floor-relay", "knotd") else \
            f"{sum(r['upstream_queries'] for wl in ('hit', 'ndots') for r in e['workloads'].get(wl, {}).get('reps', [])):.0f}"
        bad = sum(r["bad_rcodes"] for w in e["workloads"].values() for r in w["reps"])
        dist = sum(w["median"]["runs_disturbed"] for w in e["workloads"].values())
        total = sum(len(w["reps"]) for w in e["workloads"].values())
        out.append(f"| {e['label']} | {fmt(rss)} | {fmt(rss2)} | {filled} | {peak} | {up} | {bad:.0f} | "
                   f"{dist} of {total} |")
    out += ["", "A run is disturbed when other processes on the machine took more than "
            f"{settings.get('noise_pct', '?')}% of a CPU during it; it is repeated "
            "(up to the retry limit) and left out of the medians when enough undisturbed runs exist.",
            "", "Peak qps is unbounded dnsperf on the hit file; dnsperf has one core, so when the server's CPU is "
            "well below 100% the figure is dnsperf's limit, not the server's.", ""]
    if res["ratios_readyns_over_peer"]:
        out += ["## readyns ÷ peer (CPU µs per query; below 1 means readyns is cheaper)", "",
                "| peer | hit | ndots | miss |", "|---|---|---|---|"]
        for p, r in res["ratios_readyns_over_peer"].items():
            out.append(f"| {servers[p]['label']} | " + " | ".join(fmt(r[wl], 2) for wl in WORKLOADS) + " |")
        out.append("")
    out += targets(servers, cost, med, settings)
    noted = [(e["label"], n) for e in servers.values() for n in e["notes"]]
    if noted:
        out += ["## Notes", ""] + [f"- {label}: {n}" for label, n in noted] + [""]
    return "\n".join(out)


def targets(servers, cost, med, settings):
    """Issue #4's targets against this run, each also applied to the floors: a bound that even a floor misses
    cannot be met by any server of that shape on this machine."""
    hit = {s: cost(s, "hit") for s in servers}
    peers = {p: hit[p] for p in PEERS if hit.get(p)}
    if not hit.get("readyns"):
        return []
    def added_us(s):
        a = added_miss_latency_ms(med, s)
        return None if a is None else a * 1000

    def row(name, bound, value, floors, unit="µs", digits=1):
        met = "–" if bound is None or value is None else ("yes" if value <= bound else "no")
        shown = ", ".join(f"{LABEL[f].split(' (')[0]} {fmt(v, digits)}" for f, v in floors if v is not None) or "–"
        return f"| {name} | {fmt(bound, digits)} {unit} | {fmt(value, digits)} {unit} | {met} | {shown} |"

    out = ["## Issue #4 targets in this run", "",
           "| target | bound | readyns | met | floors against the same bound |", "|---|---|---|---|---|"]
    if peers:
        best = min(peers, key=peers.get)
        out.append(row(f"hit ≤ 0.75 × the best peer ({LABEL[best]} {peers[best]:.1f})", 0.75 * peers[best],
                       hit["readyns"], [(f, hit.get(f)) for f in ECHOES]))
    if hit.get("floor"):
        out.append(row("hit ≤ floor + 1.5 µs", hit["floor"] + 1.5, hit["readyns"], [("floor-epoll", hit.get("floor-epoll"))]))
    if cost("dnsdist", "miss"):
        out.append(row(f"miss ≤ 0.8 × dnsdist ({cost('dnsdist', 'miss'):.1f})", 0.8 * cost("dnsdist", "miss"),
                       cost("readyns", "miss"), [("floor-relay", cost("floor-relay", "miss"))]))
    out.append(row("latency added on a miss ≤ 50 µs over knotd direct", 50, added_us("readyns"),
                   [("floor-relay", added_us("floor-relay"))], digits=0))
    rss = servers["readyns"]["rss_after_fill_kib"]
    out.append(row(f"RSS ≤ 64 MiB with {settings.get('fill', '?')} more names", 64,
                   rss / 1024 if rss else None, [], unit="MiB", digits=0))
    return out + [""]


def plot(res, cost, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    servers = [s for s, e in res["servers"].items() if e["workloads"]]
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    width = 0.27
    colors = {"hit": "#4c72b0", "ndots": "#dd8452", "miss": "#55a868"}
    names = {"hit": "hit path", "ndots": "ndots:5 mix", "miss": "miss path (every name new)"}
    for i, wl in enumerate(WORKLOADS):
        xs, ys = [], []
        for j, s in enumerate(servers):
            v = cost(s, wl)
            if v is not None:
                xs.append(j + (i - 1) * width)
                ys.append(v)
        bars = ax.bar(xs, ys, width, label=names[wl], color=colors[wl])
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    ax.set_xticks(range(len(servers)))
    ax.set_xticklabels([res["servers"][s]["label"].replace(" (", "\n(") for s in servers], fontsize=8)
    for tick, s in zip(ax.get_xticklabels(), servers):
        if s == "readyns":
            tick.set_fontweight("bold")
    ax.set_ylabel("server CPU µs per answered query (lower is better)")
    ax.set_title("DNS cache CPU cost per query, one thread pinned to one core — " + res["meta"].get("settings", ""),
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main():
    work, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    res, cost, med = build(work)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
    md = markdown(res, cost, med)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(md + "\n")
    plot(res, cost, os.path.join(outdir, "cost.png"))
    print(md)
    print(f"wrote {outdir}/results.json, results.md, cost.png")


if __name__ == "__main__":
    main()
