"""Writing a benchmark's section into docs/benchmarks.md: replaced in place when it exists, else appended."""

from __future__ import annotations

from pathlib import Path


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
