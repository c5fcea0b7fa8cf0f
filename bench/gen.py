#!/usr/bin/python3
"""Generates the bench's zones and dnsperf query files.

The zones are a CoreDNS-like cluster.local and an external example.org.

Usage: gen.py OUTDIR [TTL]

Writes OUTDIR/cluster.local.zone, OUTDIR/example.org.zone, OUTDIR/hit.txt, OUTDIR/ndots.txt and
OUTDIR/expect.txt (a few names with their answer, used to check each server answers correctly).
Miss-path names are not written here: run.sh makes a fresh set per server and repetition so that
no name is ever asked twice.
"""
import os
import random
import sys

NAMESPACES = 20
SERVICES_PER_NS = 50      # ClusterIP services: one A, one SRV each
HEADLESS_PER_NS = 5       # headless services: 10 endpoint A records, 10 SRV, one A per endpoint hostname
ENDPOINTS = 10
EXTERNAL_HOSTS = 200      # example.org: A + AAAA each, plus a CNAME for every fourth host
# The wildcard label under which every miss-path name lands; run.sh builds names <unique>.miss.cluster.local.
MISS_LABEL = "miss"


def cluster_zone(ttl):
    """Returns (zone text, positive names as (qname, qtype), sample (qname, qtype, first answer))."""
    z = [
        "$ORIGIN cluster.local.",
        f"$TTL {ttl}",
        # The SOA minimum is the negative TTL (RFC 2308): equal to the TTL so NXDOMAIN/NODATA stay cached too.
        f"@ IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 2024010101 7200 1800 86400 {ttl}",
        "@ IN NS ns.dns",
        "ns.dns IN A 10.96.0.10",
        f"*.{MISS_LABEL} IN A 10.99.0.1",
    ]
    names, samples = [], []
    n = 0
    for k in range(NAMESPACES):
        ns = f"ns{k}"
        for s in range(SERVICES_PER_NS):
            n += 1
            ip = f"10.96.{n >> 8}.{n & 255}"
            owner = f"svc{s}.{ns}.svc"
            z.append(f"{owner} IN A {ip}")
            # CoreDNS names SRV records after the named port and protocol.
            z.append(f"_http._tcp.{owner} IN SRV 0 100 80 {owner}.cluster.local.")
            names += [(f"{owner}.cluster.local", "A"), (f"_http._tcp.{owner}.cluster.local", "SRV")]
            if k == 0 and s < 3:
                samples.append((f"{owner}.cluster.local", "A", ip))
        for h in range(HEADLESS_PER_NS):
            n += 1
            owner = f"db{h}.{ns}.svc"
            for e in range(ENDPOINTS):
                ip = f"10.244.{n & 255}.{e + 10}"
                host = f"{ip.replace('.', '-')}.{owner}"   # CoreDNS's dashed-IP endpoint hostname
                z.append(f"{owner} IN A {ip}")
                z.append(f"{host} IN A {ip}")
                z.append(f"_grpc._tcp.{owner} IN SRV 0 10 9090 {host}.cluster.local.")
                names.append((f"{host}.cluster.local", "A"))
            names += [(f"{owner}.cluster.local", "A"), (f"_grpc._tcp.{owner}.cluster.local", "SRV")]
    return "\n".join(z) + "\n", names, samples


def external_zone(ttl):
    z = [
        "$ORIGIN example.org.",
        f"$TTL {ttl}",
        f"@ IN SOA ns.example.org. hostmaster.example.org. 2024010101 7200 1800 86400 {ttl}",
        "@ IN NS ns",
        "ns IN A 192.0.2.1",
    ]
    names, samples = [], []
    for i in range(EXTERNAL_HOSTS):
        z.append(f"api{i} IN A 192.0.2.{i % 250 + 2}")
        z.append(f"api{i} IN AAAA 2001:db8::{i + 1:x}")
        names += [(f"api{i}.example.org", "A"), (f"api{i}.example.org", "AAAA")]
        if i % 4 == 0:
            z.append(f"www{i} IN CNAME api{i}")
            names.append((f"www{i}.example.org", "A"))
    samples.append(("api7.example.org", "A", "192.0.2.9"))
    return "\n".join(z) + "\n", names, samples


def ndots_queries(rnd, count):
    """What pods with the default ndots:5 resolv.conf send for a mix of lookups.

    A pod in namespace P has search list P.svc.cluster.local svc.cluster.local cluster.local; any name with
    fewer than 5 dots is tried with each suffix before being tried as-is, and glibc asks A and AAAA for each try.
    """
    out = []
    search = lambda p: [f"{p}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    while len(out) < count:
        pod_ns = f"ns{rnd.randrange(4)}"          # the clients live in a few namespaces
        kind = rnd.random()
        if kind < 0.35:    # "svcN": same-namespace short name, found at the first suffix
            tries = [f"svc{rnd.randrange(SERVICES_PER_NS)}.{pod_ns}.svc.cluster.local"]
        elif kind < 0.55:  # "svcN.nsK": one NXDOMAIN, then found at svc.cluster.local
            target = f"svc{rnd.randrange(SERVICES_PER_NS)}.ns{rnd.randrange(NAMESPACES)}"
            tries = [f"{target}.{search(pod_ns)[0]}", f"{target}.svc.cluster.local"]
        elif kind < 0.75:  # "svcN.nsK.svc.cluster.local" (4 dots < 5): all three suffixes fail first
            target = f"svc{rnd.randrange(SERVICES_PER_NS)}.ns{rnd.randrange(NAMESPACES)}.svc.cluster.local"
            tries = [f"{target}.{s}" for s in search(pod_ns)] + [target]
        else:              # an external name: all three suffixes fail first
            target = f"api{rnd.randrange(EXTERNAL_HOSTS)}.example.org"
            tries = [f"{target}.{s}" for s in search(pod_ns)] + [target]
        for name in tries:
            out += [f"{name} A", f"{name} AAAA"]
    return out


def main():
    outdir = sys.argv[1]
    ttl = int(sys.argv[2]) if len(sys.argv) > 2 else 3600
    os.makedirs(outdir, exist_ok=True)
    rnd = random.Random(20240101)  # fixed seed: every run and every server sees the same query files
    ctext, cnames, csamples = cluster_zone(ttl)
    etext, enames, esamples = external_zone(ttl)
    with open(os.path.join(outdir, "cluster.local.zone"), "w") as f:
        f.write(ctext)
    with open(os.path.join(outdir, "example.org.zone"), "w") as f:
        f.write(etext)
    # Hit path: every positive name, shuffled, repeated so a measured run loops over a warm working set.
    positive = [f"{n} {t}" for n, t in cnames + enames]
    hits = []
    for _ in range(10):
        rnd.shuffle(positive)
        hits += positive
    with open(os.path.join(outdir, "hit.txt"), "w") as f:
        f.write("\n".join(hits) + "\n")
    nd = ndots_queries(rnd, 120000)
    with open(os.path.join(outdir, "ndots.txt"), "w") as f:
        f.write("\n".join(nd) + "\n")
    with open(os.path.join(outdir, "expect.txt"), "w") as f:
        for n, t, a in csamples + esamples:
            f.write(f"{n} {t} {a}\n")
    print(f"{len(positive)} positive names, {len(hits)} hit queries, "
          f"{len(set(nd))} distinct ndots queries in {len(nd)}")


if __name__ == "__main__":
    main()
