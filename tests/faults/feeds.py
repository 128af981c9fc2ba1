"""A valid Green Button feed of any size, written straight to disk (for imports that take long enough to interrupt).

``usage_points`` UsagePoints, each with one MeterReading of ``days`` daily IntervalBlocks of 15-minute readings (Wh,
cost in USD), sharing one LocalTimeParameters and one ReadingType (NAESB REQ.21 ESPI; ESPI-NOTES §7).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_feed"]

_BASE = "https://gateway.example/DataCustodian/espi/1_1/resource"
_START = 1704067200  # 2024-01-01T00:00:00Z
_STEP = 900


def _entry(n: int, self_href: str, up_href: str, related: list[str], body: str) -> str:
    links = f'<link rel="self" href="{self_href}"/><link rel="up" href="{up_href}"/>' + "".join(
        f'<link rel="related" href="{href}"/>' for href in related
    )
    return (
        f"<entry><id>urn:uuid:6f1d4c2e-0000-5000-8000-{n:012d}</id>{links}<title>r{n}</title>"
        f"<content>{body}</content><published>2025-01-01T00:00:00Z</published>"
        "<updated>2025-01-01T00:00:00Z</updated></entry>\n"
    )


def write_feed(path: Path, *, usage_points: int = 1, days: int = 365, seed: int = 0) -> int:
    """Write the feed to ``path``; return the number of IntervalReadings in it. ``seed`` makes the ids distinct."""
    per_day = 86400 // _STEP
    with path.open("w", encoding="utf-8") as out:
        out.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
            f'xmlns:espi="http://naesb.org/espi"><id>urn:uuid:6f1d4c2e-0000-5000-8000-{seed:06d}000000</id>'
            "<title>Fault test</title><updated>2025-01-01T00:00:00Z</updated>"
            f'<link rel="self" href="{_BASE}/Batch/1"/>\n'
        )
        ltp = f"{_BASE}/LocalTimeParameters/{seed}"
        reading_type = f"{_BASE}/ReadingType/{seed}"
        base_n = seed * 10_000_000
        out.write(
            _entry(
                base_n + 1,
                ltp,
                f"{_BASE}/LocalTimeParameters",
                [],
                "<espi:LocalTimeParameters><espi:dstEndRule>B40E2000</espi:dstEndRule><espi:dstOffset>3600"
                "</espi:dstOffset><espi:dstStartRule>360E2000</espi:dstStartRule><espi:tzOffset>-28800"
                "</espi:tzOffset></espi:LocalTimeParameters>",
            )
        )
        out.write(
            _entry(
                base_n + 2,
                reading_type,
                f"{_BASE}/ReadingType",
                [],
                "<espi:ReadingType><espi:accumulationBehaviour>4</espi:accumulationBehaviour><espi:commodity>1"
                "</espi:commodity><espi:currency>840</espi:currency><espi:flowDirection>1</espi:flowDirection>"
                f"<espi:intervalLength>{_STEP}</espi:intervalLength><espi:kind>12</espi:kind>"
                "<espi:powerOfTenMultiplier>0</espi:powerOfTenMultiplier><espi:uom>72</espi:uom></espi:ReadingType>",
            )
        )
        for point in range(usage_points):
            n = base_n + 1000 + point * 1000
            up = f"{_BASE}/RetailCustomer/{seed}/UsagePoint/{point}"
            mr = f"{up}/MeterReading/1"
            out.write(
                _entry(
                    n,
                    up,
                    f"{_BASE}/RetailCustomer/{seed}/UsagePoint",
                    [f"{up}/MeterReading", ltp],
                    "<espi:UsagePoint><espi:ServiceCategory><espi:kind>0</espi:kind></espi:ServiceCategory>"
                    "</espi:UsagePoint>",
                )
            )
            related = [f"{mr}/IntervalBlock", reading_type]
            out.write(_entry(n + 1, mr, f"{up}/MeterReading", related, "<espi:MeterReading/>"))
            for day in range(days):
                block_start = _START + day * 86400
                readings = "".join(
                    f"<espi:IntervalReading><espi:cost>{(i * 37 + point) % 500}</espi:cost>"
                    f"<espi:timePeriod><espi:duration>{_STEP}</espi:duration><espi:start>{block_start + i * _STEP}"
                    f"</espi:start></espi:timePeriod><espi:value>{(i * 113 + day) % 2000}</espi:value>"
                    "</espi:IntervalReading>"
                    for i in range(per_day)
                )
                out.write(
                    _entry(
                        n + 2 + day,
                        f"{mr}/IntervalBlock/{day}",
                        f"{mr}/IntervalBlock",
                        [],
                        f"<espi:IntervalBlock><espi:interval><espi:duration>86400</espi:duration><espi:start>"
                        f"{block_start}</espi:start></espi:interval>{readings}</espi:IntervalBlock>",
                    )
                )
        out.write("</feed>\n")
    return usage_points * days * per_day
