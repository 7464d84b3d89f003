#!/usr/bin/env python3
"""Charts for BENCHMARKS.md from owp-bench JSON reports.

Usage: python3 scripts/plot_bench.py [RESULTS_DIR] [OUTPUT_PNG] [WHATIF_DIR]
       (defaults: bench/results, docs/bench/latency-vs-load.png, bench/whatif; needs `pip install matplotlib`)

Left: `party` end-to-end delivery latency percentiles (host send -> each guest receive) against
the number of connections, one point per party report in RESULTS_DIR; party reports in WHATIF_DIR
(runs against a patched server, see BENCHMARKS.md) are drawn as separate stars. Right: `fanout` delivered
messages per second against offered load, for owp-server and for the ceiling run
(`owp-server --fanout-ceiling`) when the reports carry one.
"""
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(directory):
    reports = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path) as f:
            report = json.load(f)
        if isinstance(report, dict) and "scenario" in report:
            reports.append(report)
    return reports


def summary(party, fanout, connections):
    """Markdown tables of every report (pasted into BENCHMARKS.md)."""
    out = []
    if party:
        out.append("| rooms x members | connections | msgs in/s | msgs out/s | delivery p50 | p90 | p99 | p99.9 | max | ping RTT p99 | play margin p1 (min) | server lateness p99 (est.) | server RSS end | errors |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in party:
            m, lat = r["result"]["metrics"], r["result"]["latency"]
            d = lat["delivery"]
            ping = lat.get("ping_rtt", {}).get("p99_ms")
            margin = lat.get("scheduled_play_margin", {}).get("min_ms")
            late = m.get("server_scheduling_lateness_p99_ms_estimate")
            rss = m.get("server_rss_mib_end")
            out.append(
                f"| {int(m['rooms'])} x {r['parameters']['members']} | {int(m['connections'])} | {m['messages_sent_per_second']:.0f} | {m['messages_received_per_second']:.0f} "
                f"| {d['p50_ms']:.2f} | {d['p90_ms']:.2f} | {d['p99_ms']:.2f} | {d['p999_ms']:.2f} | {d['max_ms']:.2f} "
                f"| {'%.2f' % ping if ping is not None else '-'} | {'%.0f' % margin if margin is not None else '-'} "
                f"| {'%.2f ms' % late if late is not None else '-'} | {'%.0f MiB' % rss if rss is not None else '-'} | {r['result']['errorTotal']} |"
            )
        out.append("")
    if fanout:
        out.append("| rooms x 20 | offered deliveries/s | delivered/s | p50 | p99 | ceiling delivered/s | ceiling p99 | ratio | errors |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in fanout:
            m, lat = r["result"]["metrics"], r["result"]["latency"].get("fanout_delivery", {})
            c = r.get("ceiling") or {}
            cm, clat = c.get("metrics", {}), c.get("latency", {}).get("fanout_delivery", {})
            ratio = (r.get("ratio_to_ceiling") or {}).get("delivered_per_second")
            out.append(
                f"| {int(m['rooms'])} | {m['offered_deliveries_per_second']:.0f} | {m['delivered_per_second']:.0f} | {lat.get('p50_ms', 0):.2f} | {lat.get('p99_ms', 0):.2f} "
                f"| {cm.get('delivered_per_second', 0):.0f} | {clat.get('p99_ms', 0):.2f} | {'%.1f %%' % (ratio * 100) if ratio else '-'} | {r['result']['errorTotal'] + c.get('errorTotal', 0)} |"
            )
        out.append("")
    if connections:
        out.append("| run | client | opened | held | handshakes/s | handshake p99 | server RSS before | after hold | per connection | generator RSS | errors |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in connections:
            m = r["result"]["metrics"]
            h = r["result"]["latency"].get("handshake", {})
            out.append(
                f"| {r.get('label') or ''} | {r['parameters']['client']} | {int(m['connections_opened'])} | {int(m.get('held_at_end', 0))} | {m['handshakes_per_second']:.0f} "
                f"| {h.get('p99_ms', 0):.1f} ms | {m.get('server_rss_mib_before', 0):.0f} MiB | {m.get('server_rss_mib_after_hold', 0):.0f} MiB "
                f"| {m.get('server_rss_kib_per_connection', 0):.1f} KiB | {m.get('generator_rss_mib', 0):.0f} MiB | {r['result']['errorTotal']} |"
            )
        out.append("")
    return "\n".join(out)


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    output = sys.argv[2] if len(sys.argv) > 2 else "docs/bench/latency-vs-load.png"
    whatif_dir = sys.argv[3] if len(sys.argv) > 3 else "bench/whatif"
    reports = load(results)
    whatif = [r for r in (load(whatif_dir) if os.path.isdir(whatif_dir) else []) if r["scenario"] == "party"]
    party = sorted(
        (r for r in reports if r["scenario"] == "party" and "delivery" in r["result"]["latency"]),
        key=lambda r: r["result"]["metrics"]["connections"],
    )
    fanout = sorted((r for r in reports if r["scenario"] == "fanout"), key=lambda r: r["result"]["metrics"]["offered_deliveries_per_second"])
    if not party and not fanout:
        sys.exit(f"no party or fanout reports in {results}")

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    ax = axes[0]
    if party:
        x = [r["result"]["metrics"]["connections"] for r in party]
        for key, label, style in (
            ("p50_ms", "p50", "o-"),
            ("p90_ms", "p90", "s-"),
            ("p99_ms", "p99", "^-"),
            ("p999_ms", "p99.9", "v--"),
        ):
            ax.plot(x, [r["result"]["latency"]["delivery"][key] for r in party], style, label=label)
        lateness = [(r["result"]["metrics"]["connections"], r["result"]["metrics"].get("server_scheduling_lateness_p99_ms_estimate")) for r in party]
        lateness = [(c, v) for c, v in lateness if v is not None]
        if lateness:
            ax.plot([c for c, _ in lateness], [v for _, v in lateness], "x:", color="grey", label="server scheduling lateness p99")
        for r in whatif:
            c = r["result"]["metrics"]["connections"]
            ax.plot([c], [r["result"]["latency"]["delivery"]["p99_ms"]], "*", markersize=12, color="purple", label=f"delivery p99, {r.get('label') or 'what-if (patched server)'}")
        ax.axhline(5, color="red", linewidth=0.8, linestyle="--", label="target p99 5 ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("connections (rooms of %d)" % int(party[0]["parameters"].get("members", "10")))
        ax.set_ylabel("latency (ms)")
        ax.set_title("party: host send -> guest receive")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    else:
        ax.set_visible(False)

    ax = axes[1]
    if fanout:
        offered = [r["result"]["metrics"]["offered_deliveries_per_second"] for r in fanout]
        ax.plot(offered, [r["result"]["metrics"]["delivered_per_second"] for r in fanout], "o-", label="owp-server (watch party)")
        ceiling = [(o, r["ceiling"]["metrics"]["delivered_per_second"]) for o, r in zip(offered, fanout) if r.get("ceiling")]
        if ceiling:
            ax.plot([o for o, _ in ceiling], [v for _, v in ceiling], "s--", label="ceiling (--fanout-ceiling)")
        ax.plot(offered, offered, ":", color="grey", label="offered")
        for o, r in zip(offered, fanout):
            p99 = r["result"]["latency"].get("fanout_delivery", {}).get("p99_ms")
            if p99 is not None:
                ax.annotate(f"p99 {p99:.0f} ms", (o, r["result"]["metrics"]["delivered_per_second"]), fontsize=7, textcoords="offset points", xytext=(4, -10))
        ax.set_xlabel("offered deliveries / s (members x 25 msg/s x 20 recipients)")
        ax.set_ylabel("delivered messages / s")
        ax.set_title("fanout: rooms of 20 chatting at 25 msg/s each")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    else:
        ax.set_visible(False)

    machine = (party or fanout)[0]["machine"]
    fig.suptitle(f"owp-bench on {machine['cpus']} CPUs ({machine['cpu_model']}), generator and server on the same machine", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    fig.savefig(output, dpi=110)
    print(f"wrote {output} ({len(party)} party, {len(fanout)} fanout reports)")
    connections = [r for r in reports if r["scenario"] == "connections"]
    tables = summary(party, fanout, connections)
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(tables)
    print(tables)


if __name__ == "__main__":
    main()
