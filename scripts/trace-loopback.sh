#!/usr/bin/env bash
# Watch loopback TCP for connects that stall, while anything runs (`make test`, a CI run):
#   scripts/trace-loopback.sh start DIR   # before the run
#   scripts/trace-loopback.sh stop DIR    # after it; prints the stalled connects it saw
# It records, from the start: every SYN, SYN-ACK and RST on `lo` (tcpdump, headers only), the
# kernel's drop tracepoint (skb:kfree_skb, IPv4, with its reason and the function that dropped),
# each SYN retransmitted by a socket in SYN_SENT (tcp:tcp_retransmit_skb: the stall itself), each
# SYN-ACK retransmitted, every RST sent or received, and the TCP counters (nstat) before and after.
# Needs root, tracefs and tcpdump (Debian's package). docs/kube-adapter.md, "Connections", reads
# what it found.
set -euo pipefail
cmd=${1:?usage: trace-loopback.sh start|stop DIR}
dir=${2:?usage: trace-loopback.sh start|stop DIR}
tracing=/sys/kernel/tracing
events=(skb/kfree_skb tcp/tcp_retransmit_skb tcp/tcp_retransmit_synack tcp/tcp_send_reset
  tcp/tcp_receive_reset)

start() {
  mkdir -p "$dir"
  [ -e "$tracing/trace_pipe" ] || mount -t tracefs nodev "$tracing"
  command -v tcpdump >/dev/null || apt-get install -y -qq tcpdump >/dev/null
  nstat -az >"$dir/nstat-before.txt"
  echo "$(date +%s.%N) $(cut -d' ' -f1 /proc/uptime)" >"$dir/clock.txt" # epoch, trace's clock
  echo 65536 >"$tracing/buffer_size_kb"
  echo >"$tracing/trace"
  echo 'protocol == 2048' >"$tracing/events/skb/kfree_skb/filter"   # IPv4 only
  echo 'state == 2' >"$tracing/events/tcp/tcp_retransmit_skb/filter" # TCP_SYN_SENT
  for event in "${events[@]}"; do echo 1 >"$tracing/events/$event/enable"; done
  nohup cat "$tracing/trace_pipe" >"$dir/trace.txt" 2>/dev/null &
  echo $! >"$dir/trace.pid"
  nohup tcpdump -Z root -i lo -n -s 96 -U -w "$dir/lo.pcap" \
    'tcp[tcpflags] & (tcp-syn|tcp-rst) != 0' >"$dir/tcpdump.log" 2>&1 &
  echo $! >"$dir/tcpdump.pid"
  # every TCP segment's headers too, in a ring of 10 x 200 MB (about 90 minutes of `make test`):
  # what answered a SYN that got no SYN-ACK (an ACK from an old socket of the same four-tuple)
  nohup tcpdump -Z root -i lo -n -s 96 -C 200 -W 10 -w "$dir/all.pcap" tcp \
    >"$dir/tcpdump-all.log" 2>&1 &
  echo $! >"$dir/tcpdump-all.pid"
  echo "tracing loopback connects into $dir"
}

stop() {
  for event in "${events[@]}"; do echo 0 >"$tracing/events/$event/enable"; done
  echo 0 >"$tracing/events/skb/kfree_skb/filter"
  echo 0 >"$tracing/events/tcp/tcp_retransmit_skb/filter"
  for pid in trace tcpdump tcpdump-all; do
    if [ -f "$dir/$pid.pid" ]; then kill "$(cat "$dir/$pid.pid")" 2>/dev/null || true; fi
  done
  sleep 1
  nstat -az >"$dir/nstat-after.txt"
  echo "SYNs retransmitted in SYN_SENT (each one a connect that waited):"
  grep -c 'tcp_retransmit_skb' "$dir/trace.txt" || true
  grep 'tcp_retransmit_skb' "$dir/trace.txt" | head -20 || true
  echo "drops by reason and function:"
  grep -o 'location=[^ ]* reason: [A-Z_0-9]*' "$dir/trace.txt" | sort | uniq -c | sort -rn | head -20 || true
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) echo "usage: trace-loopback.sh start|stop DIR" >&2; exit 2 ;;
esac
