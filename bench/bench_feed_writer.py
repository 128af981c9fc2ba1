"""Benchmark: the streaming feed writer against a bare f-string loop writing the same bytes.

Target (issue "ESPI XML" item 2): writing a meter-year of 15-minute data (35,040 readings in 365 daily
IntervalBlocks) as an Atom feed takes at most 3x the time of a plain Python loop that formats the same bytes
with f-strings. Both are measured in this run on data built in memory, best of several runs; the script also
checks that both produce identical bytes (so the floor is a fair one), reports the peak memory allocated while
streaming (tracemalloc) against the output size, and exits 1 above the ratio.

    python bench/bench_feed_writer.py [--repeat N] [--max-ratio R]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

# Runnable as `python bench/bench_feed_writer.py` from a checkout, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.espi.links import ResourceLinks
from gateway.espi.writer import ReadingRow, feed, feed_link, interval_block_entry
from gateway.storage.ids import stable_uuid, urn
from gateway.storage.models import IntervalBlock

BASE = "https://utility.example.com/DataCustodian/espi/1_1/resource"
YEAR_START = 1_735_718_400  # 2025-01-01T08:00:00Z (local midnight, US Pacific)
UPDATED = dt.datetime(2026, 1, 2, 6, tzinfo=dt.UTC)


def build_year() -> tuple[list[IntervalBlock], dict[int, list[ReadingRow]]]:
    """365 daily blocks of 96 quarter-hour readings with costs (DST is irrelevant to the cost of writing)."""
    blocks: list[IntervalBlock] = []
    readings: dict[int, list[ReadingRow]] = {}
    for day in range(365):
        start = YEAR_START + day * 86400
        at = dt.datetime.fromtimestamp(start + 86400 + 6 * 3600, dt.UTC)
        block = IntervalBlock(
            id=day + 1,
            uuid=stable_uuid("IntervalBlock", "bench", start),
            description=None,
            published=at,
            updated=at,
            meter_reading_id=2,
            start=start,
            duration=86400,
        )
        blocks.append(block)
        readings[block.id] = [
            (
                start + i * 900,
                900,
                150 + (i * 37 + day) % 400,
                (150 + (i * 37 + day) % 400) * 41,
                None,
                None,
                None,
                None,
            )
            for i in range(96)
        ]
    return blocks, readings


def write_with_writer(blocks: list[IntervalBlock], readings: dict[int, list[ReadingRow]]) -> Iterator[bytes]:
    scope = ResourceLinks(BASE).subscription(5)
    entries = (interval_block_entry(block, readings[block.id], scope, usage_point_id=1) for block in blocks)
    return feed(
        entries,
        feed_id=uuid.UUID(int=42),
        title="IntervalBlocks",
        updated=UPDATED,
        self_link=feed_link("self", scope.interval_blocks(1, 2), "IntervalBlock"),
    )


def _atom(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_floor(blocks: list[IntervalBlock], readings: dict[int, list[ReadingRow]]) -> Iterator[bytes]:
    """The floor: the same document from one flat loop of f-strings, no abstraction, one chunk per block."""
    up = f"{BASE}/Subscription/5/UsagePoint/1/MeterReading/2/IntervalBlock"
    yield (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi">\n'
        f"  <id>{urn(uuid.UUID(int=42))}</id>\n  <title>IntervalBlocks</title>\n"
        f"  <updated>{_atom(UPDATED)}</updated>\n"
        f'  <link rel="self" type="espi-feed/IntervalBlock" href="{up}"/>\n'
    ).encode()
    for block in blocks:
        parts = [
            f"  <entry>\n    <id>{urn(block.uuid)}</id>\n"
            f'    <link rel="self" type="espi-entry/IntervalBlock" href="{up}/{block.id}"/>\n'
            f'    <link rel="up" type="espi-feed/IntervalBlock" href="{up}"/>\n'
            f"    <title>IntervalBlock</title>\n    <published>{_atom(block.published)}</published>\n"
            f"    <updated>{_atom(block.updated)}</updated>\n    <content>\n      <espi:IntervalBlock>\n"
            f"        <espi:interval>\n          <espi:duration>{block.duration}</espi:duration>\n"
            f"          <espi:start>{block.start}</espi:start>\n        </espi:interval>\n"
        ]
        for start, duration, value, cost, *_ in readings[block.id]:
            parts.append(
                f"        <espi:IntervalReading><espi:cost>{cost}</espi:cost><espi:timePeriod>"
                f"<espi:duration>{duration}"
                f"</espi:duration><espi:start>{start}</espi:start></espi:timePeriod><espi:value>{value}</espi:value>"
                "</espi:IntervalReading>\n"
            )
        parts.append("      </espi:IntervalBlock>\n    </content>\n  </entry>\n")
        yield "".join(parts).encode()
    yield b"</feed>\n"


def best_time(write: Callable[[], Iterator[bytes]], repeat: int) -> tuple[float, int]:
    """Best wall time of draining the stream (as a WSGI server would), and the byte count."""
    best, size = float("inf"), 0
    for _ in range(repeat):
        began = time.perf_counter()
        size = sum(len(chunk) for chunk in write())
        best = min(best, time.perf_counter() - began)
    return best, size


def peak_streaming_memory(write: Callable[[], Iterator[bytes]]) -> int:
    """Peak bytes allocated while streaming the feed to nowhere (the input data already exists)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    baseline, _ = tracemalloc.get_traced_memory()
    for _chunk in write():
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - baseline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7, help="runs per measurement (best is kept)")
    parser.add_argument("--max-ratio", type=float, default=3.0, help="fail above this writer/floor ratio")
    args = parser.parse_args(argv)

    blocks, readings = build_year()
    reading_count = sum(len(rows) for rows in readings.values())
    written = b"".join(write_with_writer(blocks, readings))
    floor_bytes = b"".join(write_floor(blocks, readings))
    if written != floor_bytes:
        print(
            "error: the floor does not produce the writer's bytes; the comparison would be unfair",
            file=sys.stderr,
        )
        return 2

    floor_s, size = best_time(lambda: write_floor(blocks, readings), args.repeat)
    writer_s, _ = best_time(lambda: write_with_writer(blocks, readings), args.repeat)
    peak = peak_streaming_memory(lambda: write_with_writer(blocks, readings))
    ratio = writer_s / floor_s

    print(f"feed: {len(blocks)} IntervalBlocks, {reading_count:,} IntervalReadings, {size:,} bytes")
    print(f"f-string floor : {floor_s * 1000:8.1f} ms")
    print(f"feed writer    : {writer_s * 1000:8.1f} ms")
    print(f"ratio          : {ratio:8.2f}x (target <= {args.max_ratio:g}x)")
    print(
        f"peak memory while streaming: {peak / 1024:,.0f} KiB for {size / 1024:,.0f} KiB of output ({peak / size:.1%})"
    )
    if ratio > args.max_ratio:
        print(f"FAIL: the writer is {ratio:.2f}x the floor (> {args.max_ratio:g}x)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
