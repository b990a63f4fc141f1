"""benchmarks/scale.png from benchmarks/out/results.json (run with benchmarks/.venv-peer, which has
matplotlib): wall time against clusters for each forks value, first converge and re-run, with the
min-max range of the runs and the fitted line; and the time per cluster.

    benchmarks/.venv-peer/bin/python benchmarks/plot.py benchmarks/out/results.json benchmarks/scale.png
"""

import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
from report import fit, scale_series  # noqa: E402


def main():
    data_file, out = sys.argv[1], sys.argv[2]
    with open(data_file) as f:
        data = json.load(f)
    info, records = data["info"], data["records"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    colors = {}
    all_clusters = set()
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for forks in info["forks"]:
        for phase, style in (("first", "-"), ("rerun", "--")):
            series = scale_series(records, forks, phase)
            if not series:
                continue
            xs = [c for c, _rs in series]
            all_clusters.update(xs)
            walls = [[r["wall"] for r in rs] for _c, rs in series]
            med = [statistics.median(w) for w in walls]
            low = [m - min(w) for m, w in zip(med, walls)]
            high = [max(w) - m for m, w in zip(med, walls)]
            label = "forks %d, %s" % (forks, "first converge" if phase == "first" else "re-run")
            color = colors.setdefault(label, palette[len(colors) % len(palette)])
            left.errorbar(xs, med, yerr=[low, high], fmt="o" + style, color=color, label=label, capsize=3)
            result = fit(list(zip(xs, med)))
            if result:
                a, b, _r2 = result
                end = max(info["scale"] + (info.get("light_scale") or []))  # past the last measured point: the fit
                left.plot([1, end], [a + b, a + b * end], ":", color=color, linewidth=1)
                label += " (%.1f s + %.2f s/cluster)" % (a, b)
                left.lines[-1].set_label(None)
            right.plot(xs, [m / c for m, c in zip(med, xs)], "o" + style, color=color, label=label)
    left.set_xlabel("clusters (inventory hosts)")
    left.set_ylabel("wall time (s), median; bars: min-max")
    left.set_title("Wall time against clusters (dotted: fit, extended to %d)"
                   % max(info["scale"] + (info.get("light_scale") or [])))
    if max(all_clusters or [1]) > 100:  # 1 to 500: both axes logarithmic, or the small points are one dot
        left.set_xscale("log")
        left.set_yscale("log")
        left.set_xticks(sorted(all_clusters))
        left.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    right.set_xscale("log")
    right.set_xticks(sorted(all_clusters))
    right.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    right.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    right.set_xlabel("clusters (log scale)")
    right.set_ylabel("wall time per cluster (s)")
    right.set_title("Time per cluster")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    m = info["machine"]
    fig.suptitle("meshpki.vault_ca istio_vault_ca role, %s cores, load %.1f at start; %s"
                 % (m["cores"], m["loadavg_start"][0], info["started"]), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
