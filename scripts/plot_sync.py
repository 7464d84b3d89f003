#!/usr/bin/env python3
"""Chart of the sync simulator's results (docs/sync.md): play-start spread p50/p99 per scenario,
fixed vs adaptive. Usage: swift run -c release owp-syncsim 500 5eed sync.csv && python3 scripts/plot_sync.py sync.csv docs/img/sync-spread.png"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, metric, title in ((axes[0], "play", "play-start spread (all members)"), (axes[1], "lead", "click → playback (ms)")):
    width = 0.38
    for offset, mode, color in ((-width / 2, "fixed", "#9aa5b1"), (width / 2, "adaptive", "#2f7ed8")):
        data = {r["scenario"]: r for r in rows if r["mode"] == mode}
        xs = [i + offset for i in range(len(scenarios))]
        if metric == "play":
            p50 = [float(data[s]["play_p50"]) for s in scenarios]
            p99 = [float(data[s]["play_p99"]) for s in scenarios]
            ax.bar(xs, p99, width, color=color, alpha=0.45, label=f"{mode} p99")
            ax.bar(xs, p50, width, color=color, label=f"{mode} p50")
        else:
            ax.bar(xs, [float(data[s]["click_to_playback_p50"]) for s in scenarios], width, color=color, label=mode)
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels(scenarios, rotation=20, ha="right", fontsize=8)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
axes[0].axhline(10, color="#d9534f", linestyle="--", linewidth=1)
axes[0].set_ylabel("ms")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print("wrote", sys.argv[2])
