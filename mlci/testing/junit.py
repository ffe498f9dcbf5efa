"""JUnit XML: write the tests section for GitHub test reporters, read pytest's report back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlci.results.tests import ModelTestResult


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def to_xml(results: Sequence[ModelTestResult], suite: str) -> str:
    """One ``<testsuite>`` of ``<testcase>`` elements, one per test result."""
    counts = {s: sum(r.status == s for r in results) for s in ("failed", "error", "skipped")}
    total_time = sum(r.duration_s for r in results)
    attrs = {
        "name": suite,
        "tests": str(len(results)),
        "failures": str(counts["failed"]),
        "errors": str(counts["error"]),
        "skipped": str(counts["skipped"]),
        "time": f"{total_time:.3f}",
    }
    root = ET.Element("testsuites", attrs)
    ts = ET.SubElement(
        root,
        "testsuite",
        {
            **attrs,
            "timestamp": datetime.now(timezone.utc)
            .isoformat(timespec="seconds")
            .replace("+00:00", ""),
        },
    )
    for r in results:
        case = ET.SubElement(
            ts,
            "testcase",
            {
                "classname": f"{suite}.{r.kind}",
                "name": r.id,
                "time": f"{r.duration_s:.3f}",
            },
        )
        evidence = (
            f"observed: {_text(r.observed)}\nthreshold: {_text(r.threshold)}\n"
            f"required: {str(r.required).lower()}\n"
            f"details: {json.dumps(r.details.model_dump(mode='json'), default=str)[:4000]}"
        )
        if r.status == "failed":
            el = ET.SubElement(case, "failure", {"message": r.message, "type": r.kind})
            el.text = evidence
        elif r.status == "error":
            el = ET.SubElement(case, "error", {"message": r.message, "type": r.kind})
            el.text = evidence
        elif r.status == "skipped":
            ET.SubElement(case, "skipped", {"message": r.message})
        else:
            ET.SubElement(case, "system-out").text = r.message
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def read_cases(path: Path) -> list[dict[str, Any]]:
    """Test cases of a JUnit XML file (as pytest writes it): name, status, message, time."""
    root = ET.parse(path).getroot()
    cases = []
    for case in root.iter("testcase"):
        status, message = "passed", "passed"
        for child, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            found = case.find(child)
            if found is not None:
                status = name
                message = found.get("message") or (found.text or "").strip() or name
                break
        cases.append(
            {
                "classname": case.get("classname", ""),
                "name": case.get("name", ""),
                "file": case.get("file"),
                "status": status,
                "message": " ".join(message.split())[:500],
                "time": float(case.get("time") or 0.0),
            }
        )
    return cases
