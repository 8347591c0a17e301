"""The load test's report: per-track rows and a summary, as a table and as JSON."""

from __future__ import annotations

from typing import Any

from .track_stats import percentile

COLUMNS = (
    ("room", "room", 4),
    ("subscriber", "subscriber", 14),
    ("publisher", "publisher", 14),
    ("kind", "kind", 5),
    ("packets", "packets", 8),
    ("kbps", "bitrate_kbps", 8),
    ("loss%", "loss_pct", 6),
    ("jitter", "jitter_ms", 7),
    ("frames", "frames", 7),
    ("ttff ms", "time_to_first_frame_ms", 8),
    ("p50 ms", "latency_p50_ms", 7),
    ("p99 ms", "latency_p99_ms", 7),
)


def summarize(
    rows: list[dict[str, Any]], latencies: list[float], ttffs: list[float]
) -> dict[str, Any]:
    """Totals over the per-track rows of expected tracks."""
    expected = [r for r in rows if r["expected"]]
    received = [r for r in expected if r["received"]]
    packets = sum(r["packets"] for r in rows)
    lost = sum(r["packets_lost"] for r in rows)
    return {
        "tracks_expected": len(expected),
        "tracks_received": len(received),
        "tracks_missing": [
            f"{r['publisher']} {r['kind']} -> {r['subscriber']}"
            for r in expected
            if not r["received"]
        ],
        "tracks_unexpected": sum(1 for r in rows if not r["expected"]),
        "total_bitrate_kbps": round(sum(r["bitrate_kbps"] for r in rows), 1),
        "packets_received": packets,
        "packets_lost": lost,
        "loss_pct": round(100 * lost / (packets + lost), 3) if packets + lost else 0.0,
        "latency_samples": len(latencies),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p99_ms": percentile(latencies, 99),
        "time_to_first_frame_p50_ms": percentile(ttffs, 50),
        "time_to_first_frame_max_ms": round(max(ttffs), 1) if ttffs else None,
    }


def _cell(value: Any, width: int) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, float):
        text = f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    else:
        text = str(value)
    return text[:width].rjust(width)


def track_table(rows: list[dict[str, Any]]) -> str:
    header = " ".join(title.rjust(width) for title, _key, width in COLUMNS)
    lines = [header, "-" * len(header)]
    for row in rows:
        line = " ".join(_cell(row.get(key), width) for _title, key, width in COLUMNS)
        if row["expected"] and not row["received"]:
            line += "  NOT RECEIVED"
        lines.append(line)
    return "\n".join(lines)


def summary_text(report: dict[str, Any]) -> str:
    s = report["summary"]
    config = report["config"]
    people = report["participants"]
    lines = [
        "Summary",
        f"  rooms {config['rooms']} x ({config['publishers']} publishers + "
        f"{config['subscribers']} subscribers), {report['window_seconds']:.1f} s measured"
        + ("" if config["audio_only"] else f", video {config['video_bitrate'] // 1000} kbps"),
        f"  participants joined   {people['joined']}/{people['expected']}"
        f"   join errors {len(people['join_errors'])}",
        f"  tracks received       {s['tracks_received']}/{s['tracks_expected']}",
        f"  total bitrate         {s['total_bitrate_kbps'] / 1000:.2f} Mbps",
        f"  packet loss           {s['loss_pct']:.3f} % ({s['packets_lost']} of "
        f"{s['packets_received'] + s['packets_lost']})",
        f"  latency p50 / p99     {_ms(s['latency_p50_ms'])} / {_ms(s['latency_p99_ms'])}"
        f"   ({s['latency_samples']} samples)",
        f"  time to first frame   p50 {_ms(s['time_to_first_frame_p50_ms'])}, "
        f"max {_ms(s['time_to_first_frame_max_ms'])}",
    ]
    client = report["client"]
    lines.append(
        f"  load client CPU       {client['cpu_pct']:.1f} % of a core, "
        f"{_num(client['cpu_ms_per_s_per_publisher'])} ms/s per publisher, "
        f"{_num(client['cpu_us_per_received_packet'])} us per received packet"
    )
    server = report.get("server")
    if server:
        lines.append(
            f"  server                {server['forwarded_pps']:.0f} forwarded packets/s, "
            f"CPU {server['cpu_pct']:.1f} %, "
            f"{_num(server['cpu_us_per_forwarded_packet'])} us per forwarded packet, "
            f"{_num(server['forwarded_pps_per_core'])} forwarded packets/s per core"
        )
        lines.append(
            f"                        NACKs {server['nacks_received']}, "
            f"PLIs {server['plis_received']}, dropped {server['dropped_packets']}"
        )
    else:
        lines.append(f"  server                {report.get('server_note') or 'no figures'}")
    for error in people["join_errors"][:10]:
        lines.append(f"  join error: {error['participant']}: {error['error']}")
    for missing in s["tracks_missing"][:10]:
        lines.append(f"  never received: {missing}")
    if report.get("aborted"):
        lines.append(f"  ABORTED: {report['aborted']} (partial report)")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"
