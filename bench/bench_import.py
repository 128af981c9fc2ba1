"""Benchmark: importing a meter-year of 15-minute data against a bare ``lxml.etree.iterparse`` pass.

    python bench/bench_import.py [--runs N] [--max-ratio 4]

The feed (35,040 readings; ESPI-NOTES §7) is the checked-in ``sample_data/home_electricity_15min.xml`` when
present, else made by :mod:`gateway.sample_data`, else by a minimal inline generator. Both measurements run in
the same process on the same file, best of ``--runs``: the baseline iterates every element and clears it; the
import runs :func:`gateway.espi.ingest.import_feed` (gate, hardened parse, schema validation per entry, Core
bulk inserts) into a fresh SQLite file each run, committed. Exits 1 when the import takes more than
``--max-ratio`` times the baseline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.customers import add_customer  # noqa: E402
from gateway.espi.ingest import import_feed  # noqa: E402
from gateway.security.passwords import PasswordHasher  # noqa: E402
from gateway.storage import migrate  # noqa: E402
from gateway.storage.engine import make_engine, make_session_factory, session_scope  # noqa: E402

CHECKED_IN = ROOT / "sample_data" / "home_electricity_15min.xml"


def inline_meter_year(path: Path, *, days: int = 365, step: int = 900) -> None:
    """A valid feed: UsagePoint, LocalTimeParameters, ReadingType (Wh, cost in USD), MeterReading, daily
    blocks."""
    base = "https://gateway.example/DataCustodian/espi/1_1/resource"
    up = f"{base}/RetailCustomer/1/UsagePoint/1"
    mr = f"{up}/MeterReading/1"
    start0 = 1704067200  # 2024-01-01T00:00:00Z

    def entry(n: int, self_href: str, up_href: str, related: list[str], body: str) -> str:
        links = f'<link rel="self" href="{self_href}"/><link rel="up" href="{up_href}"/>' + "".join(
            f'<link rel="related" href="{href}"/>' for href in related
        )
        return (
            f"<entry><id>urn:uuid:6f1d4c2e-0000-5000-8000-{n:012d}</id>{links}<title>r{n}</title>"
            f"<content>{body}</content><published>2025-01-01T00:00:00Z</published>"
            f"<updated>2025-01-01T00:00:00Z</updated></entry>\n"
        )

    with path.open("w", encoding="utf-8") as out:
        out.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
            'xmlns:espi="http://naesb.org/espi"><id>urn:uuid:6f1d4c2e-0000-5000-8000-000000000000</id>'
            "<title>Bench</title><updated>2025-01-01T00:00:00Z</updated>"
            f'<link rel="self" href="{base}/Batch/1"/>\n'
        )
        out.write(
            entry(
                1,
                up,
                f"{base}/RetailCustomer/1/UsagePoint",
                [f"{up}/MeterReading", f"{base}/LocalTimeParameters/1"],
                "<espi:UsagePoint><espi:ServiceCategory><espi:kind>0</espi:kind></espi:ServiceCategory></espi:UsagePoint>",
            )
        )
        out.write(
            entry(
                2,
                f"{base}/LocalTimeParameters/1",
                f"{base}/LocalTimeParameters",
                [],
                "<espi:LocalTimeParameters><espi:dstEndRule>B40E2000</espi:dstEndRule><espi:dstOffset>3600"
                "</espi:dstOffset><espi:dstStartRule>360E2000</espi:dstStartRule><espi:tzOffset>-28800"
                "</espi:tzOffset></espi:LocalTimeParameters>",
            )
        )
        out.write(
            entry(
                3,
                f"{base}/ReadingType/1",
                f"{base}/ReadingType",
                [],
                "<espi:ReadingType><espi:accumulationBehaviour>4</espi:accumulationBehaviour><espi:commodity>1"
                "</espi:commodity><espi:currency>840</espi:currency><espi:flowDirection>1</espi:flowDirection>"
                f"<espi:intervalLength>{step}</espi:intervalLength><espi:kind>12</espi:kind>"
                "<espi:powerOfTenMultiplier>0</espi:powerOfTenMultiplier><espi:uom>72</espi:uom></espi:ReadingType>",
            )
        )
        out.write(
            entry(
                4,
                mr,
                f"{up}/MeterReading",
                [f"{mr}/IntervalBlock", f"{base}/ReadingType/1"],
                "<espi:MeterReading/>",
            )
        )
        per_day = 86400 // step
        for day in range(days):
            block_start = start0 + day * 86400
            readings = "".join(
                f"<espi:IntervalReading><espi:cost>{(i * 37) % 500}</espi:cost>"
                f"<espi:timePeriod><espi:duration>{step}"
                f"</espi:duration><espi:start>{block_start + i * step}</espi:start></espi:timePeriod>"
                f"<espi:value>{(i * 113) % 2000}</espi:value></espi:IntervalReading>"
                for i in range(per_day)
            )
            out.write(
                entry(
                    10 + day,
                    f"{mr}/IntervalBlock/{day}",
                    f"{mr}/IntervalBlock",
                    [],
                    f"<espi:IntervalBlock><espi:interval><espi:duration>86400</espi:duration><espi:start>"
                    f"{block_start}</espi:start></espi:interval>{readings}</espi:IntervalBlock>",
                )
            )
        out.write("</feed>\n")


def meter_year(directory: Path) -> tuple[Path, str]:
    """The feed to measure and where it came from."""
    if CHECKED_IN.is_file():
        return CHECKED_IN, "sample_data/home_electricity_15min.xml"
    path = directory / "meter_year.xml"
    try:
        from gateway.sample_data import home_electricity_feed

        with path.open("wb") as out:
            for chunk in home_electricity_feed().write():
                out.write(chunk)
        return path, "gateway.sample_data.home_electricity_feed()"
    except Exception as error:  # the generator is optional here: any failure falls back to the inline feed
        print(f"(gateway.sample_data unavailable: {error!r}; using the inline generator)", file=sys.stderr)
    inline_meter_year(path)
    return path, "inline generator"


def bare_iterparse(path: Path) -> None:
    for _event, element in etree.iterparse(str(path)):
        element.clear()


def import_once(path: Path, directory: Path, run: int) -> tuple[float, int]:
    """Import into a fresh SQLite file (schema created beforehand, untimed); return (seconds, readings)."""
    engine = make_engine(f"sqlite:///{directory / f'bench-{run}.sqlite3'}")
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as session:
        customer = add_customer(
            session,
            PasswordHasher(time_cost=1, memory_cost_kib=8),
            username="bench",
            email="bench@example.org",
        )
    with session_scope(sessions) as session:
        customer = session.merge(customer)
        started = time.perf_counter()
        report = import_feed(session, path, customer=customer)
        session.commit()
        elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, report.interval_readings


def best(runs: int, measure: Callable[[int], float]) -> float:
    return min(measure(run) for run in range(runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-ratio", type=float, default=4.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        directory = Path(tmp)
        path, origin = meter_year(directory)
        readings: list[int] = []

        def timed_import(run: int) -> float:
            elapsed, count = import_once(path, directory, run)
            readings.append(count)
            return elapsed

        def timed_iterparse(_run: int) -> float:
            started = time.perf_counter()
            bare_iterparse(path)
            return time.perf_counter() - started

        baseline = best(args.runs, timed_iterparse)
        imported = best(args.runs, timed_import)
    ratio = imported / baseline
    size = path.stat().st_size if path.exists() else 0
    print(
        f"feed: {origin} ({size / 1e6:.1f} MB, {readings[0]} readings)"
        if size
        else f"feed: {origin} ({readings[0]} readings)"
    )
    print(f"bare iterparse: {baseline * 1000:8.1f} ms")
    print(f"import:         {imported * 1000:8.1f} ms")
    print(f"ratio:          {ratio:8.2f}  (limit {args.max_ratio})")
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
