"""`configplane plan --compare <ref>`: the base (the project at a git commit) and the working
tree planned offline, and what changes between them per service, as a table, JSON or the
markdown of a pull-request comment. The comparison is configplane.offline.compare; this module
runs the two plans and renders. Everything printed goes through `emit` (one redaction point),
after both stacks' secret values are protected."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.text import Text

from configplane.cli.boundary import UserError, emit, marked, plain_console, protect_stack
from configplane.inputs import StackFileError, stack_file_name
from configplane.model import InvalidStack, printable
from configplane.offline import (
    Plan,
    PolicyPackError,
    compare,
    run_plan,
    snapshot,
)
from configplane.ops import GitRefError, materialise, resolve_base
from configplane.validation import issues_of

MAX_MARKDOWN = 60_000  # a GitHub comment holds 65,536 characters; room for the marker
MAX_VALUE = 300  # characters of one value in a markdown cell
OP_MARKS = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}


def run_compare(project_dir: Path, stack: str, ref: str, *, services: tuple[str, ...],
                fmt: str, policy: bool, plan_head: Callable[[], Plan]) -> Plan:
    """Plan the base and the working tree and print the difference; returns the working
    tree's plan. `plan_head` plans it as `plan` does (its errors reported the same way)."""
    try:
        base = resolve_base(project_dir, ref)
    except GitRefError as exc:
        raise UserError(str(exc)) from None
    head = plan_head()  # the working tree's own errors first, as `plan` reports them
    with tempfile.TemporaryDirectory(prefix="configplane-base-") as tmp:
        try:
            base_dir = materialise(base, Path(tmp) / "project")
        except GitRefError as exc:
            raise UserError(str(exc)) from None
        protect_stack(base_dir, stack)  # the base's secrets are as secret as the head's
        base_side = _plan_base(base_dir, stack, base.ref, base.commit, services, policy)
    diff = compare(base_side, snapshot(head))
    diff["base"] = {"ref": ref, "commit": base.commit}
    renderer = render_markdown if fmt == "markdown" else render_table
    emit(diff, "json" if fmt == "json" else "table", renderer)
    return head


def _plan_base(base_dir: Path, stack: str, ref: str, commit: str, services: tuple[str, ...],
               policy: bool) -> dict[str, Any]:
    shown = f"the base {printable(ref)!r} ({commit[:12]})"
    if not (base_dir / stack_file_name(stack)).is_file():
        # a stack the change adds: everything in it is created
        return {"stack": stack, "services": {},
                "shared": {"resources": {}, "violations": [], "secure": {}}}
    try:
        plan: Plan = run_plan(base_dir, stack, policy=policy, services=services or None,
                              one_stack=True)  # per service: the environment as one stack
    except (StackFileError, InvalidStack) as exc:
        issues = issues_of(exc, stack)
        first = issues[0] if issues else None
        where = f": {first.where}: {first.path}: {first.message}" if first else ""
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        raise UserError(f"{shown} cannot be planned with this configplane{where}{more}. Fix: "
                        "compare with a base that validates here, or plan without "
                        "--compare.") from None
    except PolicyPackError as exc:
        raise UserError(f"{shown}: {exc}") from None
    return snapshot(plan)


# --- rendering ------------------------------------------------------------------------------


def _plain(value: Any) -> str:
    if value is None:
        return "(absent)"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _fields(rows: list[dict[str, Any]]) -> str:
    return "; ".join(f"{f['field']}: {_plain(f['old'])} -> {_plain(f['new'])}" for f in rows)


def _headline(diff: dict[str, Any]) -> str:
    s = diff["summary"]
    ops = ", ".join(f"{s[op]} to {op}" for op in ("create", "update", "replace", "delete")
                    if s[op]) or "no resource changes"
    return (f"{ops}; policy: {s['new_violations']} new, {s['resolved_violations']} resolved "
            "violation(s)")


def render_table(diff: dict[str, Any]) -> None:
    out = plain_console()
    base = diff["base"]
    out.print(f"stack {diff['stack']}: from {base['ref']} ({base['commit'][:12]}) to the "
              "working tree")
    if not diff["changed"]:
        out.print("no changes")
        return
    for name, service in diff["services"].items():
        out.print(f"service {name} ({service['change']})")
        for line in _service_lines(service):
            out.print(_indented(line))
    shared = diff["shared"]
    if shared["resources"] or shared["secure"] or shared["policy"]["new"] or \
            shared["policy"]["resolved"]:
        out.print("shared (the stack's own resources)")
        for key in shared["secure"]:
            out.print(f"  secure value {key}: changed (never shown)")
        for line in _resource_lines(shared["resources"]) + _policy_lines(shared["policy"]):
            out.print(_indented(line))
    out.print(_headline(diff))


def _indented(line: str) -> Text:
    """A line of the comparison, indented; a resource's change mark coloured on a terminal."""
    mark, _, rest = line.partition(" ")
    if mark in OP_MARKS.values():
        return Text("  ") + marked(mark, f" {rest}")
    return Text(f"  {line}")


def _service_lines(service: dict[str, Any]) -> list[str]:
    lines = [f"config {r['key']}: {_plain(r['old'])} -> {_plain(r['new'])}"
             for r in service["config"]]
    if service["config_hash"]:
        h = service["config_hash"]
        lines.append(f"config hash: {h['old'] or '(none)'} -> {h['new'] or '(none)'}")
    for tenant, t in service["tenants"].items():
        lines += [f"tenant {tenant} config {r['key']}: {_plain(r['old'])} -> {_plain(r['new'])}"
                  for r in t["config"]]
    for f in service["flags"]:
        lines.append(f"flag {f['flag']} {f['change']}: {_fields(f['fields'])}")
    for s in service["secrets"]:
        detail = [_fields(s["fields"])] if s["fields"] else []
        if s.get("value"):
            detail.append("value changed (never shown)")
        lines.append(f"secret {s['secret']} {s['change']}: {'; '.join(detail)}")
    return lines + _resource_lines(service["resources"]) + _policy_lines(service["policy"])


def _resource_lines(resources: list[dict[str, Any]]) -> list[str]:
    return [f"{OP_MARKS[r['op']]} {r['op']} {r['type']} {r['name']}"
            + (f" ({', '.join(r['paths'])})" if r["paths"] else "") for r in resources]


def _policy_lines(policy: dict[str, list]) -> list[str]:
    return [f"{label} violation [{v['level']}] {v['policy']} on {v['resource']}: {v['message']}"
            for label, key in (("new", "new"), ("resolved", "resolved")) for v in policy[key]]


def _code(value: Any) -> str:
    """A value as a markdown table cell: a code span (no markup, no mentions), one line."""
    if value is None:
        return "*(absent)*"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                           ensure_ascii=False)
    if any(c in text for c in "\r\n\t") or not text.isprintable():
        text = json.dumps(text, ensure_ascii=False)[1:-1]  # escapes shown, one line
    if len(text) > MAX_VALUE:
        text = text[:MAX_VALUE] + "…"
    longest = max((len(m) for m in _backtick_runs(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def _backtick_runs(text: str) -> list[str]:
    runs, current = [], ""
    for c in text:
        if c == "`":
            current += c
        elif current:
            runs.append(current)
            current = ""
    return runs + ([current] if current else [])


def _md(text: str) -> str:
    """Free text (a policy message, a name) in a markdown cell: no markup, one line."""
    text = " ".join(str(text).split())
    for c in "\\`*_[]<>|#!~&@":
        text = text.replace(c, "\\" + c)
    return text


def render_markdown(diff: dict[str, Any]) -> None:
    out = plain_console()
    text = markdown(diff)
    out.print(text, end="")


def markdown(diff: dict[str, Any]) -> str:
    base = diff["base"]
    head = (f"### configplane plan: stack `{diff['stack']}`\n\n"
            f"Base {_code(base['ref'])} ({_code(base['commit'][:12])}) → this change. "
            "Offline plan (no cloud); secret values are never shown.\n\n")
    if not diff["changed"]:
        return head + "No changes.\n"
    sections = [_md_service(name, s) for name, s in diff["services"].items()]
    shared = _md_shared(diff["shared"])
    if shared:
        sections.append(shared)
    footer = f"**Summary:** {_headline(diff)}.\n"
    body, total = [], len(head) + len(footer)
    for i, section in enumerate(sections):
        if total + len(section) > MAX_MARKDOWN:
            body.append(f"*… {len(sections) - i} more section(s) left out to fit a comment: "
                        f"run `configplane plan --stack {diff['stack']} --compare "
                        f"{base['commit'][:12]}` for all of it.*\n\n")
            break
        body.append(section)
        total += len(section)
    return head + "".join(body) + footer


def _md_service(name: str, s: dict[str, Any]) -> str:
    parts = [f"#### Service `{name}` ({s['change']})\n\n"]
    if s["config"]:
        parts.append(_md_table(("config key", "old", "new"),
                               [(_code(r["key"]), _code(r["old"]), _code(r["new"]))
                                for r in s["config"]]))
    if s["config_hash"]:
        h = s["config_hash"]
        parts.append(f"Config hash: {_code(h['old'])} → {_code(h['new'])}\n\n")
    for tenant, t in s["tenants"].items():
        if t["config"]:
            parts.append(_md_table((f"tenant {_md(tenant)} key", "old", "new"),
                                   [(_code(r["key"]), _code(r["old"]), _code(r["new"]))
                                    for r in t["config"]]))
    flag_rows = [(_code(f["flag"]), f["change"], _code(x["field"]), _code(x["old"]),
                  _code(x["new"])) for f in s["flags"] for x in f["fields"]]
    if flag_rows:
        parts.append(_md_table(("flag", "change", "field", "old", "new"), flag_rows))
    secret_rows = []
    for x in s["secrets"]:
        secret_rows += [(_code(x["secret"]), x["change"], _code(f["field"]), _code(f["old"]),
                         _code(f["new"])) for f in x["fields"]]
        if x.get("value"):
            secret_rows.append((_code(x["secret"]), x["change"], "value", "",
                                "changed (never shown)"))
    if secret_rows:
        parts.append(_md_table(("secret", "change", "field", "old", "new"), secret_rows))
    parts.append(_md_policy(s["policy"]))
    parts.append(_md_resources(s["resources"]))
    return "".join(parts)


def _md_shared(shared: dict[str, Any]) -> str:
    parts = []
    if shared["secure"]:
        parts.append("Secure values changed (never shown): "
                     + ", ".join(_code(k) for k in shared["secure"]) + "\n\n")
    parts.append(_md_policy(shared["policy"]))
    parts.append(_md_resources(shared["resources"]))
    body = "".join(parts)
    return f"#### Shared resources of the stack\n\n{body}" if body else ""


def _md_policy(policy: dict[str, list]) -> str:
    rows = [(label, _md(v["level"]), _code(v["policy"]), _code(v["resource"]), _md(v["message"]))
            for label in ("new", "resolved") for v in policy[label]]
    return _md_table(("violation", "level", "policy", "resource", "message"), rows) if rows else ""


def _md_resources(resources: list[dict[str, Any]]) -> str:
    if not resources:
        return ""
    counts: dict[str, int] = {}
    for r in resources:
        counts[r["op"]] = counts.get(r["op"], 0) + 1
    summary = ", ".join(f"{n} to {op}" for op, n in counts.items())
    rows = [(r["op"], _code(r["type"]), _code(r["name"]),
             ", ".join(_code(p) for p in r["paths"])) for r in resources]
    return (f"<details><summary>Resources: {summary}</summary>\n\n"
            + _md_table(("op", "type", "name", "what changes"), rows) + "</details>\n\n")


def _md_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n\n"
