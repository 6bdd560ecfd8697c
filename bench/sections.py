"""A benchmark's report: printed, kept under bench/out/, and written into docs/benchmarks.md on request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def replace_section(path: Path, heading: str, text: str) -> None:
    body = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{heading}\n\n{text}\n"
    if heading in body:
        start = body.index(heading)
        end = body.find("\n## ", start + len(heading))
        body = body[:start] + section + (body[end + 1:] if end != -1 else "")
    else:
        body = body.rstrip("\n") + "\n\n" + section
    path.write_text(body, encoding="utf-8")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def publish(name: str, text: str, result: Any, *, out: Path, docs: Path | None, heading: str) -> None:
    """Print the report, keep it and the raw figures as `out/NAME.md` and `out/NAME.json`, and with
    `docs` replace the section under `heading` there."""
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text + "\n", encoding="utf-8")
    (out / f"{name}.json").write_text(json.dumps(result), encoding="utf-8")
    if docs:
        replace_section(docs, heading, text)
