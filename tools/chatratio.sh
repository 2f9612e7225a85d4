#!/bin/bash
# Paired runs of one chatload row, twistd against the parked-writer
# baseline, alternating which server goes first; prints each run and the
# medians of the run's own ratios (throughput, server CPU and writes per
# delivery). The README's broadcast and pairs table comes from it.
#
#   tools/chatratio.sh RUNS broadcast -window 16 -broadcasts 2000
#   tools/chatratio.sh RUNS single -messages 5000
set -euo pipefail
runs=${1:?usage: tools/chatratio.sh RUNS SCENARIO [chatload options]}
scenario=${2:?usage: tools/chatratio.sh RUNS SCENARIO [chatload options]}
shift 2
bin=${BIN:-bin/twistd}
[ -x "$bin" ] || { echo "chatratio: no $bin; run make build first" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/chatload" ./internal/plugins/chat/chatload
field() { sed -n "s/.*server=$1 .*$2=\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{a[NR]=$1} END {m = NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.3f (%.3f-%.3f)", m, a[1], a[NR]}'; }
rate=delivered_per_s
[ "$scenario" = single ] && rate=msgs_per_s
for i in $(seq 1 "$runs"); do
	order=parked,twistd
	(( i % 2 )) || order=twistd,parked
	out=$("$dir/chatload" -bin "$bin" -scenario "$scenario" -servers "$order" "$@")
	t=$(echo "$out" | field twistd $rate) p=$(echo "$out" | field parked $rate)
	tc=$(echo "$out" | field twistd server_cpu_ns) pc=$(echo "$out" | field parked server_cpu_ns)
	tw=$(echo "$out" | field twistd server_writes) pw=$(echo "$out" | field parked server_writes)
	echo "run $i ($order): twistd $t parked $p ratio $(awk -v t="$t" -v p="$p" 'BEGIN {printf "%.3f", t/p}') cpu_ns $tc/$pc writes $tw/$pw"
	echo "$t $p $tc $pc $tw $pw" >> "$dir/runs"
done
echo "throughput ratio $(awk '{print $1/$2}' "$dir/runs" | median)"
echo "server CPU per delivery: twistd $(awk '{print $3}' "$dir/runs" | median) ns, parked $(awk '{print $4}' "$dir/runs" | median) ns"
echo "writes per delivery: twistd $(awk '{print $5}' "$dir/runs" | median), parked $(awk '{print $6}' "$dir/runs" | median)"
