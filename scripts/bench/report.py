#!/usr/bin/env python3
"""Markdown report of a scripts/bench.sh run: reads STATE/facts.json and STATE/runs/*.json."""

import json
import os
import platform
import statistics
import sys


def main():
    state = sys.argv[1]
    runs = os.path.join(state, "runs")
    facts = load(os.path.join(state, "facts.json"))

    def oha(name):
        return load(os.path.join(runs, name + ".json"))

    def rounds(name):
        """Every round of a direct, relay or gateway measure (NAME-r1.json, NAME-r2.json, ...)."""
        found, n = [], 1
        while os.path.exists(os.path.join(runs, f"{name}-r{n}.json")):
            found.append(oha(f"{name}-r{n}"))
            n += 1
        return found

    def pair(measure, via="gateway", base="direct"):
        return Pair(rounds(f"{base}-{measure}"), rounds(f"{via}-{measure}"))

    def ttfb(name):
        path = os.path.join(runs, name + ".json")
        return load(path) if os.path.exists(path) else None

    out = []
    add = out.append
    add(f"### Results ({facts['mode']} mode: `{facts['command']}`)")
    add("")
    add(
        f"Machine: {os.cpu_count()} cores ({cpu_model()}), {platform.system()} "
        f"{platform.release()}; load average {facts['load_start']} at start, "
        f"{facts['load_end']} at end. The proxies, the mock upstream and the load tool (oha) "
        "share these cores; OpenBao is idle during the load. Each saturation run lasts "
        f"{facts['duration']} s. The gateway runs with `--num_workers "
        f"{facts.get('workers', 'default')}`, nginx with one worker. Direct, relay, nginx and "
        f"gateway runs alternate, {facts['rounds']} round{'s' if facts['rounds'] > 1 else ''} of "
        "each measure; a figure is the median over the rounds, and a comparison the median of "
        "the per-round differences (so a slow moment of the machine weighs on one round, not on "
        "the result). The relay is `vaultgate-bench-relay`, a TCP relay that does no work at all "
        "in front of the same mock (this machine's floor for any proxy); nginx is a reverse proxy "
        "that does no auth, routing or accounting (keep-alive upstream, buffering and access log "
        "off); vaultgate does all of that, with a virtual key with limits, spend recorded and the "
        "provider key from OpenBao."
    )
    add("")
    add(
        "| measure | direct to mock | zero-work relay | nginx | vaultgate | nginx vs direct "
        "| vaultgate vs direct | **vaultgate vs nginx** |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in (1, 16):
        g, f, n = pair(f"c{c}"), pair(f"c{c}", "relay"), pair(f"c{c}", "nginx")
        vs = pair(f"c{c}", "gateway", "nginx")
        conns = f"{c} connection{'s' if c > 1 else ''}"
        add(
            f"| {conns}: requests/s | {g.direct(rps):,.0f} | {f.via(rps):,.0f} | "
            f"{n.via(rps):,.0f} | {g.via(rps):,.0f} | {n.ratio(rps):.0%} | {g.ratio(rps):.0%} "
            f"| **{vs.ratio(rps):.0%}** |"
        )
        add(
            f"| {conns}: p50 / p99 latency | {g.latencies('direct')} | {f.latencies('via')} | "
            f"{n.latencies('via')} | {g.latencies('via')} | {n.added_latencies()} | "
            f"{g.added_latencies()} | **{vs.added_latencies()}** |"
        )
    g, f, n = pair("rate"), pair("rate", "relay"), pair("rate", "nginx")
    vs = pair("rate", "gateway", "nginx")
    rate = facts["rate"]
    add(
        f"| {rate:,} req/s fixed rate: achieved req/s | {g.direct(rps):,.0f} | "
        f"{f.via(rps):,.0f} | {n.via(rps):,.0f} | {g.via(rps):,.0f} | | | |"
    )
    add(
        f"| {rate:,} req/s fixed rate: p50 / p99 latency | {g.latencies('direct')} | "
        f"{f.latencies('via')} | {n.latencies('via')} | {g.latencies('via')} | "
        f"{n.added_latencies()} | {g.added_latencies()} | **{vs.added_latencies()}** |"
    )
    streams = {side: ttfb(f"ttfb-{side}") for side in SIDES}
    longs = {side: ttfb(f"long-{side}") for side in SIDES}
    td, tg = streams["direct"], streams["gateway"]

    def stream_row(label, runs_by_side, part, percentiles=("p50_us", "p99_us")):
        cells = [
            " / ".join(us(r[part][p]) for p in percentiles) if r else "–"
            for r in (runs_by_side[side] for side in SIDES)
        ]
        d, n, g = (runs_by_side[s] for s in ("direct", "nginx", "gateway"))
        diff = lambda a, b: " / ".join(  # noqa: E731
            signed((a[part][p] - b[part][p]) / 1e6) for p in percentiles
        )
        return (
            f"| {label} | {' | '.join(cells)} | {diff(n, d)} | {diff(g, d)} | **{diff(g, n)}** |"
        )

    add(
        stream_row(
            f"stream, 1 connection: first SSE frame p50 / p99 ({td['iterations']:,} streams)",
            streams,
            "first_frame",
        )
    )
    add(stream_row("stream, 1 connection: whole stream p50", streams, "total", ("p50_us",)))
    ld = longs["direct"]
    add(
        stream_row(
            f"200-chunk stream, 1 connection: whole stream p50 ({ld['iterations']:,} streams)",
            longs,
            "total",
            ("p50_us",),
        )
    )
    per_chunk = {
        side: (longs[side]["total"]["p50_us"] - ld["total"]["p50_us"]) / 200 for side in SIDES
    }
    add(
        "| 200-chunk stream: added time per chunk (p50, vs direct) | | "
        + " | ".join(us(per_chunk[side]) for side in ("relay", "nginx", "gateway"))
        + " | | | |"
    )
    add("")
    errors = {
        f"{side}-{measure}": sum(non_200(run) for run in rounds(f"{side}-{measure}"))
        for side in SIDES
        for measure in ("c1", "c16", "rate")
    }
    errors["bulk"] = non_200(oha("bulk"))
    errors = {k: v for k, v in errors.items() if v}
    add(
        f"- Gateway peak RSS (VmHWM) after {facts['served']:,} answered requests "
        f"(the last run: {facts['bulk_requests']:,} requests at 16 connections): "
        f"**{facts['hwm_kb'] / 1024:.1f} MiB** (RSS now {facts['rss_end_kb'] / 1024:.1f} MiB)."
    )
    add(
        f"- Vault requests made by the gateway during the load: "
        f"**{facts['vault_after'] - facts['vault_before']}** "
        f"(`vaultgate_vault_requests_total` {facts['vault_before']} before, "
        f"{facts['vault_after']} after)."
    )
    add(
        f"- Spend recorded for the virtual key (SQLite, written by the background batch writer): "
        f"{facts['spend']} USD."
    )
    add(
        "- Non-200 answers: "
        + (", ".join(f"{k}: {v}" for k, v in errors.items()) if errors else "none")
        + "."
    )
    rss_path = os.path.join(state, "rss.txt")
    if os.path.exists(rss_path):
        samples = [line.split() for line in open(rss_path) if line.strip()]
        facts["rss_samples"] = samples
        soak = oha("soak")
        add(
            f"- Soak, {facts['soak_seconds']} s at {rate:,} req/s through the gateway "
            f"({total(soak):,} requests, p50 {lat(soak, 'p50')}, p99 {lat(soak, 'p99')}): "
            "RSS every 30 s (MiB): "
            + " ".join(f"{int(kb) / 1024:.1f}" for _, kb in samples if kb)
            + "."
        )
    if facts.get("compare"):
        name = facts["compare_name"]
        add("")
        add(f"Comparison with {name} (same mock upstream, same load):")
        add("")
        add(f"| measure | vaultgate | {name} |")
        add("|---|---:|---:|")
        for c in (1, 16):
            g, x = pair(f"c{c}"), oha(f"compare-c{c}")
            add(f"| {c} connection(s): requests/s | {g.via(rps):,.0f} | {rps(x):,.0f} |")
            add(
                f"| {c} connection(s): p50 / p99 | {g.latencies('via')} | "
                f"{lat(x, 'p50')} / {lat(x, 'p99')} |"
            )
        g, x = pair("rate"), oha("compare-rate")
        add(
            f"| {rate:,} req/s: achieved, p50 / p99 | {g.via(rps):,.0f}, "
            f"{g.latencies('via')} | {rps(x):,.0f}, {lat(x, 'p50')} / {lat(x, 'p99')} |"
        )
        tx = ttfb("compare-ttfb")
        if tx:
            add(
                f"| stream first frame p50 / p99 | {us(tg['first_frame']['p50_us'])} / "
                f"{us(tg['first_frame']['p99_us'])} | {us(tx['first_frame']['p50_us'])} / "
                f"{us(tx['first_frame']['p99_us'])} |"
            )
        hwm_path = os.path.join(runs, "compare-hwm.txt")
        if os.path.exists(hwm_path):
            kb = int(open(hwm_path).read().strip() or 0)
            add(
                f"| peak RSS of the main process | {facts['hwm_kb'] / 1024:.1f} MiB | "
                f"{kb / 1024:.1f} MiB |"
            )
        x_errors = sum(non_200(oha(n)) for n in ("compare-c1", "compare-c16", "compare-rate"))
        if x_errors:
            add(f"\n{name}: {x_errors} non-200 answers.")
    add("")
    add(targets(facts, pair, streams, longs))
    print("\n".join(out))


def targets(facts, pair, streams, longs):
    """Issue's targets: vaultgate against nginx in the same run."""
    vs16 = pair("c16", "gateway", "nginx")
    vsrate = pair("rate", "gateway", "nginx")
    tn, tg = streams["nginx"]["first_frame"], streams["gateway"]["first_frame"]
    vault = facts["vault_after"] - facts["vault_before"]
    mib = facts["hwm_kb"] / 1024
    sat = vs16.ratio(rps)
    add50 = vsrate.added(p50)
    add99 = vsrate.added(p99)
    ttfb50 = (tg["p50_us"] - tn["p50_us"]) / 1e6
    ttfb99 = (tg["p99_us"] - tn["p99_us"]) / 1e6

    def mark(ok):
        return "holds" if ok else "**missed**"

    rss = [int(kb) for _, kb in facts.get("rss_samples", []) if kb]
    lines = [
        "Targets (this run; instructions per request come from `--profile`):",
        f"- 16-connection throughput ≥ 90% of nginx's: {sat:.0%} — {mark(sat >= 0.90)}",
        f"- added p50 at {facts['rate']:,} req/s ≤ nginx's + 40 µs: {signed(add50)} against nginx "
        f"— {mark(add50 <= 40e-6)}",
        f"- p99 at {facts['rate']:,} req/s no worse than nginx's: {signed(add99)} against nginx "
        f"— {mark(add99 <= 0)}",
        f"- stream first frame p50 ≤ nginx's + 30 µs: {signed(ttfb50)} — {mark(ttfb50 <= 30e-6)}; "
        f"p99 ≤ nginx's: {signed(ttfb99)} — {mark(ttfb99 <= 0)}",
        f"- peak RSS ≤ 32 MiB after {facts['served']:,} requests: {mib:.1f} MiB — "
        f"{mark(mib <= 32)} (nginx: {facts['nginx_hwm_kb'] / 1024:.1f} MiB)",
        f"- start-up to ready with a warm Vault ≤ 100 ms: {facts['ready_ms']} ms — "
        f"{mark(0 <= facts['ready_ms'] <= 100)}",
        f"- Vault requests during load = 0: {vault} — {mark(vault == 0)}",
    ]
    if rss:
        growth = (rss[-1] - rss[0]) / 1024
        lines.append(
            f"- RSS flat over the {facts['soak_seconds'] // 60}-minute soak: "
            f"{rss[0] / 1024:.1f} → {rss[-1] / 1024:.1f} MiB ({growth:+.1f} MiB), "
            f"peak {max(rss) / 1024:.1f} MiB"
        )
    if facts["mode"] == "smoke":
        lines.append("- (smoke mode: runs are too short for these numbers to mean much)")
    return "\n".join(lines)


SIDES = ("direct", "relay", "nginx", "gateway")


class Pair:
    """The rounds of one measure, direct and via a proxy (the gateway or the relay), run
    alternately."""

    def __init__(self, direct, via):
        if not direct or len(direct) != len(via):
            raise SystemExit(f"incomplete rounds: {len(direct)} direct, {len(via)} via a proxy")
        self.rounds = list(zip(direct, via))

    def direct(self, figure):
        return statistics.median(figure(d) for d, _ in self.rounds)

    def via(self, figure):
        return statistics.median(figure(v) for _, v in self.rounds)

    def added(self, figure):
        return statistics.median(figure(v) - figure(d) for d, v in self.rounds)

    def ratio(self, figure):
        return statistics.median(figure(v) / figure(d) for d, v in self.rounds)

    def latencies(self, side):
        of = self.direct if side == "direct" else self.via
        return f"{fmt(of(p50))} / {fmt(of(p99))}"

    def added_latencies(self):
        return f"{signed(self.added(p50))} / {signed(self.added(p99))}"


def p50(run):
    return pct(run, "p50")


def p99(run):
    return pct(run, "p99")


def load(path):
    with open(path) as f:
        return json.load(f)


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def rps(run):
    return run["summary"]["requestsPerSec"]


def total(run):
    return sum(run.get("statusCodeDistribution", {}).values())


def non_200(run):
    codes = run.get("statusCodeDistribution", {})
    # Requests still in flight when a timed run ends are cut off by oha, not failed.
    errors = {
        k: v for k, v in run.get("errorDistribution", {}).items() if k != "aborted due to deadline"
    }
    return sum(v for k, v in codes.items() if k != "200") + sum(errors.values())


def pct(run, name):
    return run["latencyPercentiles"][name] or 0.0


def fmt(seconds):
    if abs(seconds) >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} µs"


def us(micros):
    return fmt(micros / 1e6)


def signed(seconds):
    """A difference with its sign: +120 µs, −95 µs."""
    return ("+" if seconds >= 0 else "−") + fmt(abs(seconds))


def lat(run, name):
    return fmt(pct(run, name))


if __name__ == "__main__":
    main()
