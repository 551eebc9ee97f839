"""junit.xml: one testcase per check, so CI systems show the gate like a test run."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from reportgen import gate
from reportgen.render import fmt, page_one as view
from reportgen.render.base import Renderer, RenderOptions

if TYPE_CHECKING:
    from reportgen.checks.base import CheckResult
    from reportgen.report import Report


def _detail(check: "CheckResult") -> str:
    """The body text of a testcase: message, value against threshold, severity."""
    lines = [
        f"{fmt.STATUS_WORD.get(check.status, check.status)}: {check.title} ({check.id})",
        check.message,
        fmt.comparison_text(check),
        f"severity: {check.severity}" + (" (blocks the gate)" if check.severity == "error" else ""),
    ]
    return fmt.xml_safe("\n".join(line for line in lines if line))


def render_junit(report: "Report", options: RenderOptions) -> bytes:
    """Return the JUnit XML document (Jenkins/GitLab/GitHub test-report compatible)."""
    counts = report.status_counts()
    total_time = sum(v for v in report.timing.values() if fmt.is_number(v) and v >= 0)
    time_text = f"{total_time:.3f}"
    name = fmt.xml_safe(report.name)
    tests = str(len(report.checks))
    failures, errors, skipped = str(counts["fail"]), str(counts["error"]), str(counts["skip"] + counts["warn"])

    root = ET.Element("testsuites", name=name, tests=tests, failures=failures, errors=errors, time=time_text)
    suite = ET.SubElement(
        root, "testsuite", name=name, tests=tests, failures=failures, errors=errors,
        skipped=skipped, time=time_text,
    )
    created = report.environment.get("created_at")
    if created:
        suite.set("timestamp", fmt.xml_safe(created))
    properties = ET.SubElement(suite, "properties")
    props = {
        "verdict": report.status,
        "task": report.task,
        "model": report.model.get("class_name") or report.model.get("kind"),
        "reportgen_version": report.environment.get("reportgen_version"),
        "seed": report.environment.get("seed"),
        "config_sha256": report.environment.get("config_sha256"),
    }
    overrides = view.gate_overrides(report)
    props["gate_strict"] = "true" if (report.gate or {}).get("strict") else "false"
    props["gate_overrides"] = str(len(overrides))
    props["gate_relaxations"] = str(sum(o.relaxes for o in overrides))
    for index, override in enumerate(overrides[:100], start=1):
        props[f"gate_override_{index}"] = f"{override.effect}: {override.describe()}"
    unmeasured = gate.not_measured_blocking(report.checks)
    props["gate_not_measured"] = str(len(unmeasured))
    for index, check in enumerate(unmeasured[:100], start=1):
        props[f"gate_not_measured_{index}"] = fmt.one_line(gate.not_measured_text(check), 500)
    props["warnings"] = str(counts["warn"])
    for key, value in props.items():
        if value is not None:
            ET.SubElement(properties, "property", name=key, value=fmt.xml_safe(value))

    for check in report.checks:
        family = check.family or "checks"
        case = ET.SubElement(suite, "testcase", classname=fmt.xml_safe(f"reportgen.{family}"), name=fmt.xml_safe(check.id))
        detail = _detail(check)
        message = fmt.xml_safe(fmt.one_line(f"{check.message} ({fmt.comparison_text(check)})", 500))
        if check.status == "fail":
            element = ET.SubElement(case, "failure", message=message, type=f"severity-{check.severity}")
            element.text = detail
        elif check.status == "error":
            element = ET.SubElement(case, "error", message=message, type="check-crashed")
            element.text = detail
        elif check.status == "skip":
            ET.SubElement(case, "skipped", message=fmt.xml_safe(fmt.one_line(check.message, 500)))
        elif check.status == "warn":
            # Viewers draw a passing testcase green; a skipped one stands out (yellow/grey) with its message.
            ET.SubElement(case, "skipped", message=fmt.xml_safe(fmt.one_line(f"WARN: {check.message} ({fmt.comparison_text(check)})", 500)))
            out = ET.SubElement(case, "system-out")
            out.text = detail
        else:
            out = ET.SubElement(case, "system-out")
            out.text = detail

    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


RENDERER = Renderer(format="junit", filename="junit.xml", render=render_junit)
