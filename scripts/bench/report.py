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

    def pair(measure, via="gateway"):
        return Pair(rounds(f"direct-{measure}"), rounds(f"{via}-{measure}"))

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
        f"{facts['load_end']} at end. The gateway, the mock upstream and the load tool (oha) "
        "share these cores; OpenBao is idle during the load. Each saturation run lasts "
        f"{facts['duration']} s. The gateway runs with `--num_workers "
        f"{facts.get('workers', 'default')}`. Direct, relay and gateway runs alternate, "
        f"{facts['rounds']} round{'s' if facts['rounds'] > 1 else ''} of each measure; a figure is "
        "the median over the rounds, and a comparison the median of the per-round differences "
        "(so a slow moment of the machine weighs on one round, not on the result). The relay is "
        "`vaultgate-bench-relay`, a TCP relay that does no work at all in front of the same mock: "
        "what it adds is this machine's floor for any proxy."
    )
    add("")
    add(
        "| measure | direct to mock | zero-work relay | through vaultgate | relay vs direct "
        "(floor) | vaultgate vs direct |"
    )
    add("|---|---:|---:|---:|---:|---:|")
    for c in (1, 16):
        g, f = pair(f"c{c}"), pair(f"c{c}", "relay")
        add(
            f"| {c} connection{'s' if c > 1 else ''}: requests/s | {g.direct(rps):,.0f} | "
            f"{f.via(rps):,.0f} | {g.via(rps):,.0f} | {f.ratio(rps):.0%} of direct | "
            f"{g.ratio(rps):.0%} of direct |"
        )
        add(
            f"| {c} connection{'s' if c > 1 else ''}: p50 / p99 latency | {g.latencies('direct')} "
            f"| {f.latencies('via')} | {g.latencies('via')} | {f.added_latencies()} "
            f"| {g.added_latencies()} |"
        )
    g, f = pair("rate"), pair("rate", "relay")
    rate = facts["rate"]
    add(
        f"| {rate:,} req/s fixed rate: achieved req/s | {g.direct(rps):,.0f} | "
        f"{f.via(rps):,.0f} | {g.via(rps):,.0f} | | |"
    )
    add(
        f"| {rate:,} req/s fixed rate: p50 / p99 latency | {g.latencies('direct')} | "
        f"{f.latencies('via')} | {g.latencies('via')} | {f.added_latencies()} | "
        f"**{g.added_latencies()}** |"
    )
    td, tg = ttfb("ttfb-direct"), ttfb("ttfb-gateway")
    add(
        f"| stream, 1 connection: time to first SSE frame p50 / p99 "
        f"({td['iterations']:,} streams) | {us(td['first_frame']['p50_us'])} / "
        f"{us(td['first_frame']['p99_us'])} | | {us(tg['first_frame']['p50_us'])} / "
        f"{us(tg['first_frame']['p99_us'])} | | **{signed((tg['first_frame']['p50_us'] - td['first_frame']['p50_us']) / 1e6)}** "
        f"median, {signed((tg['first_frame']['p99_us'] - td['first_frame']['p99_us']) / 1e6)} p99 |"
    )
    add(
        f"| stream, 1 connection: whole stream p50 | {us(td['total']['p50_us'])} | | "
        f"{us(tg['total']['p50_us'])} | | {signed((tg['total']['p50_us'] - td['total']['p50_us']) / 1e6)} |"
    )
    add("")
    errors = {
        f"{side}-{measure}": sum(non_200(run) for run in rounds(f"{side}-{measure}"))
        for side in ("direct", "relay", "gateway")
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
        soak = oha("soak")
        add(
            f"- Soak, 120 s at {rate:,} req/s through the gateway ({total(soak):,} requests, "
            f"p50 {lat(soak, 'p50')}, p99 {lat(soak, 'p99')}): RSS every 10 s (MiB): "
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
    add(targets(facts, pair, td, tg))
    print("\n".join(out))


def targets(facts, pair, td, tg):
    sat = pair("c16").ratio(rps)
    add50 = pair("rate").added(p50)
    add99 = pair("rate").added(p99)
    floor_sat = pair("c16", "relay").ratio(rps)
    floor50 = pair("rate", "relay").added(p50)
    floor99 = pair("rate", "relay").added(p99)
    ttfb_add = (tg["first_frame"]["p50_us"] - td["first_frame"]["p50_us"]) / 1e6
    vault = facts["vault_after"] - facts["vault_before"]
    mib = facts["hwm_kb"] / 1024

    def mark(ok):
        return "holds" if ok else "**missed**"

    lines = [
        "Targets (this run):",
        f"- saturation at 16 connections ≥ 40% of direct: {sat:.0%} — {mark(sat >= 0.40)} "
        f"(zero-work relay: {floor_sat:.0%})",
        f"- added median at {facts['rate']:,} req/s ≤ 150 µs: {signed(add50)} — "
        f"{mark(add50 <= 150e-6)} (zero-work relay: {signed(floor50)})",
        f"- added p99 at {facts['rate']:,} req/s ≤ 1 ms: {signed(add99)} — {mark(add99 <= 1e-3)} "
        f"(zero-work relay: {signed(floor99)})",
        f"- stream first-frame overhead ≤ 0.5 ms: {signed(ttfb_add)} — {mark(ttfb_add <= 0.5e-3)}",
        f"- peak RSS ≤ 50 MB after {facts['served']:,} requests: {mib:.1f} MiB — "
        f"{mark(mib * 1.048576 <= 50)}",
        f"- Vault requests during load = 0: {vault} — {mark(vault == 0)}",
    ]
    if facts["mode"] == "smoke":
        lines.append("- (smoke mode: runs are too short for these numbers to mean much)")
    return "\n".join(lines)


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
