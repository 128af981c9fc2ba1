"""Database size per meter-year of 15-minute data, on SQLite and PostgreSQL.

    python bench/bench_storage.py [--usage-points 20] [--postgres-url URL]

Loads N usage points × 35,040 readings (daily IntervalBlocks, values and costs) with Core bulk inserts, then reports
the bytes the interval tables take per reading and per meter-year, and the load rate. Without ``--postgres-url`` it
starts a throwaway PostgreSQL cluster on 127.0.0.1 when the server binaries are installed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import Engine, func, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.storage import migrate
from gateway.storage.engine import make_engine
from gateway.storage.ids import stable_uuid
from gateway.storage.models import (
    IntervalBlock,
    MeterReading,
    ReadingType,
    RetailCustomer,
    UsagePoint,
    interval_reading_table,
)

READINGS_PER_YEAR = 35_040
YEAR_START = int(dt.datetime(2025, 1, 1, 8, tzinfo=dt.UTC).timestamp())


def load(engine: Engine, usage_points: int) -> float:
    """Load the data set; return seconds spent inserting readings."""
    spent = 0.0
    with engine.begin() as conn:
        reading_type_id = conn.execute(
            insert(ReadingType).returning(ReadingType.id),
            [
                {
                    "uuid": uuid.uuid4(),
                    "uom": 72,
                    "power_of_ten_multiplier": 0,
                    "interval_length": 900,
                    "published": dt.datetime.now(dt.UTC),
                    "updated": dt.datetime.now(dt.UTC),
                }
            ],
        ).scalar_one()
        customer_id = conn.execute(
            insert(RetailCustomer).returning(RetailCustomer.id),
            [
                {
                    "uuid": uuid.uuid4(),
                    "username": "bench",
                    "email": "bench@example.com",
                    "is_active": True,
                    "password_changed_at": dt.datetime.now(dt.UTC),
                    "published": dt.datetime.now(dt.UTC),
                    "updated": dt.datetime.now(dt.UTC),
                }
            ],
        ).scalar_one()
    now = dt.datetime.now(dt.UTC)
    for n in range(usage_points):
        with engine.begin() as conn:
            up_id = conn.execute(
                insert(UsagePoint).returning(UsagePoint.id),
                [
                    {
                        "uuid": stable_uuid("bench-up", n),
                        "customer_id": customer_id,
                        "service_kind": 0,
                        "published": now,
                        "updated": now,
                    }
                ],
            ).scalar_one()
            mr_id = conn.execute(
                insert(MeterReading).returning(MeterReading.id),
                [
                    {
                        "uuid": stable_uuid("bench-mr", n),
                        "usage_point_id": up_id,
                        "reading_type_id": reading_type_id,
                        "published": now,
                        "updated": now,
                    }
                ],
            ).scalar_one()
            block_rows = [
                {
                    "uuid": stable_uuid("bench-ib", n, day),
                    "meter_reading_id": mr_id,
                    "start": YEAR_START + day * 86_400,
                    "duration": 86_400,
                    "published": now,
                    "updated": now,
                }
                for day in range(365)
            ]
            block_ids = conn.execute(
                insert(IntervalBlock).returning(IntervalBlock.id, IntervalBlock.start), block_rows
            ).all()
            started = time.perf_counter()
            batch: list[dict[str, int]] = []
            for block_id, block_start in block_ids:
                for q in range(96):
                    value = 150 + (q * 37 + n * 11) % 900
                    batch.append(
                        {
                            "interval_block_id": block_id,
                            "start": block_start + q * 900,
                            "duration": 900,
                            "value": value,
                            "cost": value * 13,
                        }
                    )
                if len(batch) >= 10_000:
                    conn.execute(insert(interval_reading_table), batch)
                    batch = []
            if batch:
                conn.execute(insert(interval_reading_table), batch)
            spent += time.perf_counter() - started
    return spent


def interval_bytes(engine: Engine) -> int:
    """Bytes taken by interval blocks and readings, indexes included."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return int(
                conn.execute(
                    text("SELECT pg_total_relation_size('interval_reading') + pg_total_relation_size('interval_block')")
                ).scalar_one()
            )
        rows = conn.execute(
            text(
                "SELECT name, SUM(pgsize) FROM dbstat WHERE name IN "
                "('interval_reading', 'interval_block', 'ix_interval_block_meter_reading_start', "
                "'sqlite_autoindex_interval_block_1') GROUP BY name"
            )
        ).all()
        return int(sum(size for _, size in rows))


def measure(label: str, url: str, usage_points: int) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    seconds = load(engine, usage_points)
    readings = usage_points * READINGS_PER_YEAR
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(interval_reading_table)) == readings
    size = interval_bytes(engine)
    engine.dispose()
    print(
        f"{label:<11} {usage_points} meter-years, {readings:,} readings: "
        f"{size / readings:6.1f} bytes/reading, {size / usage_points / 2**20:6.2f} MiB per meter-year, "
        f"bulk insert {readings / seconds:,.0f} readings/s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--usage-points", type=int, default=20)
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure("SQLite", f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", args.usage_points)
    if args.postgres_url:
        measure("PostgreSQL", args.postgres_url, args.usage_points)
        return 0
    from tests.support.postgres import PostgresCluster, find_postgres_bin

    bin_dir = find_postgres_bin()
    if bin_dir is None:
        print("PostgreSQL    skipped: no server binaries (apt-get install postgresql) and no --postgres-url")
        return 0
    cluster = PostgresCluster(bin_dir)
    cluster.start()
    try:
        measure("PostgreSQL", cluster.create_database("bench"), args.usage_points)
    finally:
        cluster.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
