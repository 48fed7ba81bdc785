"""How `configplane drift` and `configplane drift-report` print a DriftReport: markdown for a
pull-request comment or a job summary, json for tools. Only names, types, ops, property paths
and policy messages reach the page: the report holds no value."""

from __future__ import annotations

import json

from configplane.ops import (
    CONFIG_CHANGED,
    CREATION,
    DELETION,
    DRIFT,
    OUTSIDE,
    REPLACEMENT,
    SECRET_ROTATED,
    DriftReport,
    urn_parts,
)
from configplane.wording import count

ADVICE = {
    DRIFT: "changed outside Pulumi. Find who changed it; `pulumi up` puts the code's value back, "
    "or change the stack file to keep the new value.",
    CONFIG_CHANGED: "the configuration in code changed; `pulumi up` applies it.",
    REPLACEMENT: "will be deleted and created again; check that consumers follow the new name.",
    DELETION: "will be deleted; make sure nothing still reads it.",
    CREATION: "will be created.",
    SECRET_ROTATED: "rotated outside Pulumi, as expected; nothing to do. Keep the version "
    "bookkeeping out of the program (or in `ignoreChanges`) so `pulumi up` never moves it back.",
}

_HEADLINES = {
    "no-changes": "**No drift.** The stack matches the code.",
    "secret-rotations-only": "**No drift.** Only secrets rotated outside Pulumi, as expected.",
    "changes": "**Changes pending.** The code differs from the stack; no change made outside "
    "Pulumi was found.",
    "drift": "**Drift detected.** Resources were changed outside Pulumi.",
}


def _cell(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def render_json(report: DriftReport) -> str:
    return json.dumps(report.as_dict(), indent=2) + "\n"


def render(report: DriftReport, fmt: str) -> str:
    return render_json(report) if fmt == "json" else render_markdown(report)


def render_markdown(report: DriftReport) -> str:
    title = "/".join(x for x in (report.project, report.stack) if x) or "preview"
    out = [f"## configplane drift report: {_code(title)}", "", _HEADLINES[report.status], ""]
    if report.resources:
        counts = ", ".join(f"{n} {c}" for c, n in report.counts.items() if n)
        out += [f"{count(len(report.resources), 'resource')}: {counts}.", ""]
        out += [
            "| Resource | Type | Operation | Classification | Changed properties | Why |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in report.resources:
            paths = "<br>".join(
                f"{_code(p.path)} ({p.kind}{', outside Pulumi' if p.origin == OUTSIDE else ''})"
                for p in r.paths
            ) or "-"
            out.append(
                f"| {_code(r.name)} | {_code(r.type)} | {r.op} | **{r.classification}** "
                f"| {paths} | {_cell(r.reason)} |"
            )
        out += ["", "<details><summary>URNs</summary>", ""]
        out += [f"- {_code(r.urn)}" for r in report.resources]
        out += ["", "</details>", "", "### What to do", ""]
        out += [f"- **{c}**: {ADVICE[c]}" for c, n in report.counts.items() if n]
        out.append("")
    if report.violations:
        out += ["### Policy violations", "", "| Level | Policy | Resource | Message |",
                "| --- | --- | --- | --- |"]
        for v in report.violations:
            resource = _code(urn_parts(v.urn)[3]) if v.urn else "(stack)"
            out.append(
                f"| {v.level} | {_code(f'{v.policy_pack}/{v.policy}')} | {resource} "
                f"| {_cell(v.message)} |"
            )
        out.append("")
    if report.errors:
        out += ["### Errors reported by the preview", ""]
        out += [f"- {_cell(e)}" for e in report.errors]
        out.append("")
    out.append(f"Exit status: {report.exit_code}.")
    return "\n".join(out) + "\n"
