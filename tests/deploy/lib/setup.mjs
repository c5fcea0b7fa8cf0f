// Runs the node-local setup script (deploy/kubernetes/base/setup.sh) offline.
//
// Its config rendering for real, its network part against stand-ins of ip and iptables that record
// what they are asked and keep state, so that the rules and the idempotence can be checked without
// root or a network namespace.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";

function tmpdir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), "readyns-deploy-"));
}

// Renders a config template with the script. env: LOCAL_DNS_IP, KUBE_DNS_IP, ...
// Returns { status, stdout, stderr, output } (output: the written config, or null).
export function renderWithScript(scriptText, templateText, env) {
  const dir = tmpdir();
  try {
    fs.writeFileSync(path.join(dir, "setup.sh"), scriptText);
    fs.writeFileSync(path.join(dir, "readyns.yaml.in"), templateText);
    const out = path.join(dir, "out", "readyns.yaml");
    const r = spawnSync("/bin/sh", [path.join(dir, "setup.sh")], {
      encoding: "utf8",
      timeout: 20000,
      env: {
        PATH: process.env.PATH,
        READYNS_CONFIG_TEMPLATE: path.join(dir, "readyns.yaml.in"),
        READYNS_CONFIG_OUT: out,
        READYNS_SETUP_NETWORK: "false",
        ...env,
      },
    });
    return {
      status: r.status, stdout: r.stdout, stderr: r.stderr,
      output: fs.existsSync(out) ? fs.readFileSync(out, "utf8") : null,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Stand-ins: `ip` keeps links and addresses in $STATE/ip, the iptables commands keep rules in
// $STATE/<command>; every call is logged to $STATE/calls. The *-save commands print what
// $STATE/<command>.save holds, so a test can make the host look legacy or nft.
const IP_STUB = `#!/bin/sh
echo "ip $*" >> "$STATE/calls"
db="$STATE/ip"; touch "$db"
[ "$1" = "-4" ] || [ "$1" = "-6" ] && shift
case "$1 $2" in
  "link show") grep -qx "link $4" "$db" ;;
  "link add") grep -qx "link $3" "$db" && { echo "RTNETLINK answers: File exists" >&2; exit 2; }
              [ "$4 $5" = "type dummy" ] || exit 3; echo "link $3" >> "$db" ;;
  "link set") grep -qx "link $4" "$db" || exit 1; echo "up $4" >> "$db" ;;
  "addr replace") grep -qx "link $5" "$db" || exit 1
                  grep -qx "addr $5 $3" "$db" || echo "addr $5 $3" >> "$db" ;;
  *) echo "ip stub: unexpected: $*" >&2; exit 9 ;;
esac
`;
const IPTABLES_STUB = `#!/bin/sh
cmd=$(basename "$0")
echo "$cmd $*" >> "$STATE/calls"
db="$STATE/$cmd"; touch "$db"
[ "$1" = "-w" ] || { echo "$cmd stub: expected -w first" >&2; exit 9; }
shift 2
[ "$1" = "-t" ] || { echo "$cmd stub: expected -t" >&2; exit 9; }
table=$2; op=$3; chain=$4; shift 4
case "$op" in
  -C) grep -qxF "$table $chain $*" "$db" ;;
  -I) [ "$1" = "1" ] || exit 9; shift; echo "$table $chain $*" >> "$db" ;;
  *) echo "$cmd stub: unexpected $op" >&2; exit 9 ;;
esac
`;
const SAVE_STUB = `#!/bin/sh
f="$STATE/$(basename "$0").save"
[ -f "$f" ] && cat "$f"
exit 0
`;

export class FakeNode {
  constructor() {
    this.dir = tmpdir();
    this.bin = path.join(this.dir, "bin");
    this.state = path.join(this.dir, "state");
    fs.mkdirSync(this.bin);
    fs.mkdirSync(this.state);
    const put = (name, text) => fs.writeFileSync(path.join(this.bin, name), text, { mode: 0o755 });
    put("ip", IP_STUB);
    for (const c of ["iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy"]) put(c, IPTABLES_STUB);
    for (const c of ["iptables-nft-save", "iptables-legacy-save"]) put(c, SAVE_STUB);
  }

  setSave(command, text) {
    fs.writeFileSync(path.join(this.state, `${command}.save`), text);
  }

  run(scriptText, templateText, env) {
    fs.writeFileSync(path.join(this.dir, "setup.sh"), scriptText);
    fs.writeFileSync(path.join(this.dir, "readyns.yaml.in"), templateText);
    fs.rmSync(path.join(this.state, "calls"), { force: true });
    const r = spawnSync("/bin/sh", [path.join(this.dir, "setup.sh")], {
      encoding: "utf8",
      timeout: 20000,
      env: {
        // Only the stand-ins and the basic tools: a real ip or iptables must never run here.
        PATH: `${this.bin}:/usr/bin:/bin`,
        STATE: this.state,
        READYNS_CONFIG_TEMPLATE: path.join(this.dir, "readyns.yaml.in"),
        READYNS_CONFIG_OUT: path.join(this.dir, "run", "readyns.yaml"),
        ...env,
      },
    });
    return { status: r.status, stderr: r.stderr };
  }

  lines(name) {
    const f = path.join(this.state, name);
    return fs.existsSync(f) ? fs.readFileSync(f, "utf8").split("\n").filter(Boolean) : [];
  }

  cleanup() {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// The rules setup.sh must leave for one address, in the stand-in's "table chain args" form:
// NodeLocal DNSCache's set (raw NOTRACK both ways, filter ACCEPT both ways) for udp and tcp.
export function expectedRules(addr) {
  const comment = "-m comment --comment readyns node-local: skip conntrack";
  const rules = [];
  for (const p of ["udp", "tcp"]) {
    rules.push(`raw PREROUTING -p ${p} -d ${addr} --dport 53 -j NOTRACK`);
    rules.push(`raw OUTPUT -p ${p} -d ${addr} --dport 53 -j NOTRACK`);
    rules.push(`raw OUTPUT -p ${p} -s ${addr} --sport 53 -j NOTRACK`);
    rules.push(`filter INPUT -p ${p} -d ${addr} --dport 53 ${comment} -j ACCEPT`);
    rules.push(`filter OUTPUT -p ${p} -s ${addr} --sport 53 ${comment} -j ACCEPT`);
  }
  return rules;
}
