# Summarises `go test -bench` output: for every benchmark pair named
# .../twistd and .../bare, the median of its throughput metric (MB/s or
# rt/s) over the -count runs, and the ratio twistd/bare.
/^Benchmark/ {
	name = $1
	sub(/-[0-9]+$/, "", name)
	for (i = 2; i < NF; i++) {
		if ($(i + 1) == "MB/s" || $(i + 1) == "rt/s") {
			n = ++count[name]
			val[name, n] = $i
			unit[name] = $(i + 1)
		}
	}
}
function median(name,    n, i, j, t, a) {
	n = count[name]
	for (i = 1; i <= n; i++) a[i] = val[name, i]
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
	printf "| %-44s | %-6s | %12s | %12s | %6s | %s |\n", "benchmark", "unit", "twistd", "bare", "ratio", "runs"
	printf "|%s|%s|%s|%s|%s|%s|\n", "---", "---", "---:", "---:", "---:", "---:"
	for (name in count) {
		if (name !~ /\/twistd$/) continue
		row = substr(name, 1, length(name) - 7)
		bare = row "/bare"
		if (!(bare in count)) continue
		t = median(name); b = median(bare)
		printf "| %-44s | %-6s | %12.1f | %12.1f | %6.3f | %d |\n", row, unit[name], t, b, t / b, count[name] | "sort"
	}
	close("sort")
}
