# Summarises `go test -bench` output as a table of medians over the -count
# runs, twistd beside bare, for two shapes of benchmark:
#   - pairs of lines named .../twistd and .../bare (or .../loop, a second
#     baseline, shown as its own row) with a MB/s or rt/s metric;
#   - single lines carrying twistd-UNIT and bare-UNIT metrics (both servers
#     measured in alternating rounds) and the run's own ratio, whose median
#     is shown as well.
/^Benchmark/ {
	name = $1
	sub(/-[0-9]+$/, "", name)
	for (i = 2; i < NF; i++) {
		u = $(i + 1)
		if (u ~ /^(twistd|bare)-/) {
			side = substr(u, 1, index(u, "-") - 1)
			add(name "/" side, $i, substr(u, index(u, "-") + 1))
		} else if (u == "ratio") {
			add(name "/ratio", $i, "")
		} else if ((u == "MB/s" || u == "rt/s") && name ~ /\/(twistd|bare|loop)$/) {
			add(name, $i, u)
		}
	}
}
function add(key, v, u) {
	val[key, ++count[key]] = v
	unit[key] = u
}
function median(key,    n, i, j, t, a) {
	n = count[key]
	for (i = 1; i <= n; i++) a[i] = val[key, i]
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
	printf "| %-44s | %-7s | %12s | %12s | %6s | %12s | %s |\n", "benchmark", "unit", "twistd", "bare", "ratio", "paired ratio", "runs"
	printf "|%s|%s|%s|%s|%s|%s|%s|\n", "---", "---", "---:", "---:", "---:", "---:", "---:"
	for (key in count) {
		if (key !~ /\/twistd$/) continue
		row = substr(key, 1, length(key) - 7)
		for (side = 1; side <= 2; side++) {
			base = row (side == 1 ? "/bare" : "/loop")
			if (!(base in count)) continue
			t = median(key); b = median(base)
			paired = side == 1 && (row "/ratio") in count ? sprintf("%.3f", median(row "/ratio")) : "-"
			printf "| %-44s | %-7s | %12.1f | %12.1f | %6.3f | %12s | %d |\n", row (side == 1 ? "" : " vs loop"), unit[key], t, b, t / b, paired, count[key] | "sort"
		}
	}
	close("sort")
}
