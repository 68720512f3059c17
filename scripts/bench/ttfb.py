#!/usr/bin/env python3
"""Stream time-to-first-frame over one keep-alive HTTP/1.1 connection, for scripts/bench.sh.

usage: ttfb.py URL KEY MODEL ITERATIONS [WARMUP]

Sends ITERATIONS streaming chat requests one after another on one connection (raw sockets, no
HTTP library in the timed path) and prints JSON: the time from the last byte of the request to
the first byte of the response (ttfb) and to the first complete `data:` frame (first_frame), in
microseconds (median, p90, p99, mean), plus the whole stream's time (total).
"""

import json
import socket
import statistics
import sys
import time
from urllib.parse import urlsplit


def percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values):
    return {
        "p50_us": round(percentile(values, 50), 1),
        "p90_us": round(percentile(values, 90), 1),
        "p99_us": round(percentile(values, 99), 1),
        "mean_us": round(statistics.fmean(values), 1) if values else 0.0,
    }


def main():
    url, key, model, iterations = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    warmup = int(sys.argv[5]) if len(sys.argv) > 5 else 50
    parts = urlsplit(url)
    body = json.dumps(
        {
            "model": model,
            "stream": True,
            "messages": [{"role": "user", "content": "Say hello."}],
        }
    ).encode()
    request = (
        f"POST {parts.path} HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        f"Authorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\n"
        "Accept: text/event-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ttfb, first_frame, total = [], [], []
    for i in range(warmup + iterations):
        sock.sendall(request)
        start = time.perf_counter_ns()
        buffer = b""
        t_byte = t_frame = None
        while True:
            data = sock.recv(65536)
            now = time.perf_counter_ns()
            if not data:
                raise SystemExit("connection closed mid-response")
            if t_byte is None:
                t_byte = now
            buffer += data
            if t_frame is None and b"data:" in buffer:
                head_end = buffer.find(b"\r\n\r\n")
                if head_end >= 0 and b"\n\n" in buffer[buffer.find(b"data:", head_end):]:
                    t_frame = now
            if buffer.endswith(b"\r\n0\r\n\r\n"):
                break
        if not buffer.startswith(b"HTTP/1.1 200"):
            raise SystemExit("unexpected answer: " + buffer[:200].decode(errors="replace"))
        if i >= warmup:
            ttfb.append((t_byte - start) / 1000)
            first_frame.append(((t_frame or now) - start) / 1000)
            total.append((now - start) / 1000)
    sock.close()
    print(
        json.dumps(
            {
                "iterations": iterations,
                "ttfb": summary(ttfb),
                "first_frame": summary(first_frame),
                "total": summary(total),
            }
        )
    )


if __name__ == "__main__":
    main()
