#!/usr/bin/env bash
# Two "hosts" on this machine for multi-host MPI runs: network namespaces csA-ID and csB-ID joined by a veth pair,
# 10.77.0.1/24 and 10.77.0.2/24 (addresses that exist only inside the two namespaces), loopback up in both.
#   two-hosts.sh up ID      create them          two-hosts.sh down ID    remove them (and the veth pair)
#   two-hosts.sh slow ID RATE   limit both ends of the link to RATE with a tc token bucket (tbf; e.g. 1gbit or 100mbit),
#                               "slow ID off" undoes it (tbf, not netem: kernels without sch_netem, such as this machine's, have it)
# Needs root (ip netns). Used by the two-host test and docs/training.md's measurements with scripts/mpi/netns-rsh.
set -euo pipefail
cmd=${1:?up|down|slow}; id=${2:?an id}
a="csA-$id" b="csB-$id" va="csa$id" vb="csb$id"
case "$cmd" in
  up)
    ip netns add "$a"
    ip netns add "$b"
    ip link add "$va" type veth peer name "$vb"
    ip link set "$va" netns "$a"
    ip link set "$vb" netns "$b"
    ip -n "$a" addr add 10.77.0.1/24 dev "$va"
    ip -n "$b" addr add 10.77.0.2/24 dev "$vb"
    for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
    ip -n "$a" link set "$va" up
    ip -n "$b" link set "$vb" up
    ;;
  down)
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    ;;
  slow)
    rate=${3:?rate or off}
    for pair in "$a:$va" "$b:$vb"; do
      ns=${pair%%:*} dev=${pair#*:}
      ip netns exec "$ns" tc qdisc del dev "$dev" root 2>/dev/null || true
      # A 512 kB bucket holds a few of the veth's 64 kB segmentation-offload packets; 100 ms of queue before drops.
      if [[ "$rate" != off ]]; then ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "$rate" burst 512kb latency 100ms; fi
    done
    ;;
  *) echo "two-hosts.sh: unknown command $cmd" >&2; exit 2 ;;
esac
