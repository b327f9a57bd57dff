#!/usr/bin/env python3
"""Print anchors.json as one Markdown table per model.

Usage: table.py [target/bench/anchors/anchors.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = (
    ("method", "{}"),
    ("param", "{}"),
    ("bits_per_weight", "{:.3f}"),
    ("ratio_coded", "{:.3f}x"),
    ("ratio_file", "{:.3f}x"),
    ("max_abs_error", "{:.3g}"),
    ("rmse", "{:.3g}"),
    ("encode_mb_s", "{:.1f}"),
    ("decode_mb_s", "{:.1f}"),
)


def cell(record: dict, key: str, fmt: str) -> str:
    """One formatted cell; '-' for a missing value."""
    value = record.get(key)
    return "-" if value is None else fmt.format(value)


def model_table(records: list[dict]) -> list[str]:
    """Markdown lines of one model's records."""
    lines = ["| " + " | ".join(key for key, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r, key, fmt) for key, fmt in COLUMNS) + " |" for r in records]
    return lines


def main(argv: list[str]) -> int:
    """Print the tables, models in the order they appear."""
    path = Path(argv[0]) if argv else Path("target/bench/anchors/anchors.json")
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        print(f"error: {path}: {err}", file=sys.stderr)
        return 1
    machine = report.get("machine", {})
    print(f"{report.get('date')} on {machine.get('cpu_model')} ({machine.get('cores')} cores)")
    models = dict.fromkeys(r["model"] for r in report.get("records", []))
    for model in models:
        records = [r for r in report["records"] if r["model"] == model]
        first = records[0]
        print(f"\n### {model}: {first['coded_weights']} coded weights, {first['onnx_bytes']} byte file\n")
        print("\n".join(model_table(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
