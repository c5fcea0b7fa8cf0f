#!/bin/sh
# Node-local setup for readyns.
#
# The init container of the readyns-node-local DaemonSet runs it (as root, with NET_ADMIN and
# NET_RAW only) before readyns starts:
#
#  1. writes the readyns config: the template (readyns.yaml) with __LOCAL_DNS_IP__,
#     __KUBE_DNS_IP__ and __KUBE_DNS_UPSTREAM__ filled in, each as the address part of an
#     ADDR:PORT (IPv6 in brackets);
#  2. unless READYNS_SETUP_NETWORK=false (readyns --setup-interface does this part then): puts
#     LOCAL_DNS_IP and KUBE_DNS_IP on the dummy interface READYNS_INTERFACE and installs the
#     iptables rules NodeLocal DNSCache uses, which take DNS to and from those addresses out of
#     connection tracking (raw NOTRACK) and let it through (filter ACCEPT).
#
# Each step checks before it adds, so running it again (a restart, an update) changes nothing.
# Nothing removes the interface or the rules when readyns stops: see deploy/README.md.
#
# Environment:
#   LOCAL_DNS_IP                    required
#   KUBE_DNS_IP                     may be empty (kube-proxy in IPVS mode)
#   KUBE_DNS_UPSTREAM_SERVICE_HOST  set by the kubelet for the kube-dns-upstream Service
#   READYNS_INTERFACE               default nodelocaldns
#   READYNS_CONFIG_TEMPLATE         default /etc/readyns-template/readyns.yaml
#   READYNS_CONFIG_OUT              default /run/readyns/readyns.yaml
#   READYNS_SETUP_NETWORK           default true
#   IPTABLES                        iptables-nft or iptables-legacy; by default the backend the
#                                   host's kube-proxy and kubelet write to
set -eu

log() { echo "readyns-setup: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

LOCAL_DNS_IP="${LOCAL_DNS_IP:-}"
KUBE_DNS_IP="${KUBE_DNS_IP:-}"
UPSTREAM="${KUBE_DNS_UPSTREAM_SERVICE_HOST:-}"
INTERFACE="${READYNS_INTERFACE:-nodelocaldns}"
TEMPLATE="${READYNS_CONFIG_TEMPLATE:-/etc/readyns-template/readyns.yaml}"
OUT="${READYNS_CONFIG_OUT:-/run/readyns/readyns.yaml}"
SETUP_NETWORK="${READYNS_SETUP_NETWORK:-true}"

# An IPv4 or IPv6 address, checked loosely (it goes into sed expressions and YAML).
is_ip() {
  case "$1" in
    "" | *[!0-9A-Fa-f.:]*) return 1 ;;
    *.*.*.* | *:*:*) return 0 ;;
    *) return 1 ;;
  esac
}

# The address as written in ADDR:PORT.
host_part() {
  case "$1" in
    *:*) echo "[$1]" ;;
    *) echo "$1" ;;
  esac
}

render_config() {
  [ -r "$TEMPLATE" ] || die "no config template at $TEMPLATE"
  mkdir -p "$(dirname "$OUT")"
  tmp="$OUT.tmp.$$"
  drop=''
  [ -n "$KUBE_DNS_IP" ] || drop='/__KUBE_DNS_IP__/d'
  sed -e "$drop" \
    -e "s/__LOCAL_DNS_IP__/$(host_part "$LOCAL_DNS_IP")/g" \
    -e "s/__KUBE_DNS_IP__/$(host_part "$KUBE_DNS_IP")/g" \
    -e "s/__KUBE_DNS_UPSTREAM__/$(host_part "$UPSTREAM")/g" \
    "$TEMPLATE" >"$tmp"
  if grep -n '__[A-Z_]*__' "$tmp" >&2; then
    rm -f "$tmp"
    die "placeholders left unfilled in $TEMPLATE (above)"
  fi
  mv -f "$tmp" "$OUT"
  log "wrote $OUT"
}

# The iptables backend: the one whose rules kube-proxy and the kubelet write (their chains are
# named KUBE-*), as Kubernetes' iptables-wrapper decides; nft when neither has any.
pick_iptables() {
  [ -z "${IPTABLES:-}" ] || return 0
  legacy=$( (iptables-legacy-save || true) 2>/dev/null | grep -c 'KUBE-' || true)
  nft=$( (iptables-nft-save || true) 2>/dev/null | grep -c 'KUBE-' || true)
  if [ "${legacy:-0}" -gt "${nft:-0}" ]; then
    IPTABLES=iptables-legacy
  else
    IPTABLES=iptables-nft
  fi
  log "iptables backend: $IPTABLES (KUBE- rules: legacy $legacy, nft $nft)"
}

# iptables or ip6tables of the chosen backend, for an address.
iptables_for() {
  case "$1" in
    *:*) echo "ip6${IPTABLES#ip}" ;;
    *) echo "$IPTABLES" ;;
  esac
}

ensure_rule() {
  cmd=$1 table=$2 chain=$3
  shift 3
  if "$cmd" -w 5 -t "$table" -C "$chain" "$@" 2>/dev/null; then
    return 0
  fi
  "$cmd" -w 5 -t "$table" -I "$chain" 1 "$@"
  log "added: $cmd -t $table -I $chain $*"
}

setup_interface() {
  if ! ip link show dev "$INTERFACE" >/dev/null 2>&1; then
    ip link add "$INTERFACE" type dummy
    log "created dummy interface $INTERFACE"
  fi
  for addr in $ADDRESSES; do
    case "$addr" in
      *:*) ip -6 addr replace "$addr/128" dev "$INTERFACE" ;;
      *) ip -4 addr replace "$addr/32" dev "$INTERFACE" ;;
    esac
  done
  ip link set dev "$INTERFACE" up
  log "$INTERFACE holds $ADDRESSES"
}

setup_rules() {
  comment='readyns node-local: skip conntrack'
  for addr in $ADDRESSES; do
    cmd=$(iptables_for "$addr")
    for proto in udp tcp; do
      # Queries arriving from pods, and queries sent by the node itself and host-network pods.
      ensure_rule "$cmd" raw PREROUTING -p "$proto" -d "$addr" --dport 53 -j NOTRACK
      ensure_rule "$cmd" raw OUTPUT -p "$proto" -d "$addr" --dport 53 -j NOTRACK
      # Answers.
      ensure_rule "$cmd" raw OUTPUT -p "$proto" -s "$addr" --sport 53 -j NOTRACK
      # Untracked packets match no ESTABLISHED rule of a host firewall: accept them here.
      ensure_rule "$cmd" filter INPUT -p "$proto" -d "$addr" --dport 53 \
        -m comment --comment "$comment" -j ACCEPT
      ensure_rule "$cmd" filter OUTPUT -p "$proto" -s "$addr" --sport 53 \
        -m comment --comment "$comment" -j ACCEPT
    done
  done
}

is_ip "$LOCAL_DNS_IP" || die "LOCAL_DNS_IP is not an address: '$LOCAL_DNS_IP'"
[ -z "$KUBE_DNS_IP" ] || is_ip "$KUBE_DNS_IP" || die "KUBE_DNS_IP is not an address: '$KUBE_DNS_IP'"
is_ip "$UPSTREAM" || die "KUBE_DNS_UPSTREAM_SERVICE_HOST is '$UPSTREAM', not an address: the" \
  "kubelet sets it only for Services that exist when the pod starts. Create the" \
  "kube-dns-upstream Service (kubectl apply -k does); this container is retried."
if [ "$UPSTREAM" = "$KUBE_DNS_IP" ] || [ "$UPSTREAM" = "$LOCAL_DNS_IP" ]; then
  die "the upstream $UPSTREAM is an address readyns answers on itself: queries would loop"
fi

ADDRESSES="$LOCAL_DNS_IP${KUBE_DNS_IP:+ $KUBE_DNS_IP}"

render_config
case "$SETUP_NETWORK" in
  true)
    pick_iptables
    setup_interface
    setup_rules
    ;;
  false) log "network setup left to readyns (READYNS_SETUP_NETWORK=false)" ;;
  *) die "READYNS_SETUP_NETWORK must be true or false, not '$SETUP_NETWORK'" ;;
esac
log "done"
