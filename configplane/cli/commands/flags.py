"""`configplane flags`: what each variant of each flag gets in a stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from configplane.cli.boundary import (
    FORMAT_OPTION,
    UserError,
    Verb,
    emit,
    plain_console,
    print_table,
    protect_stack,
)
from configplane.cli.commands.options import PROJECT_DIR_OPTION, STACK_OPTION
from configplane.cli.commands.validate import report as report_issues
from configplane.model import describe
from configplane.validation import load_or_issues


@click.command("flags", cls=Verb)
@STACK_OPTION
@click.option("--service", "service", help="Only this service (default: every service with flags).")
@PROJECT_DIR_OPTION
@FORMAT_OPTION
def command(stack: str, service: str | None, project_dir: Path, fmt: str) -> None:
    """Show each flag's state, default variant, the share of targeting keys each variant gets
    (from the rollout or the fractional targeting), a summary of other targeting rules and the
    rollout step this stack is at. The stack is validated first (exit 1 with its errors).

    Example: configplane flags --stack prod --service web --format json
    """
    protect_stack(project_dir, stack)
    model, issues = load_or_issues(project_dir, stack)
    if model is None:
        report_issues(stack, issues, fmt)
        raise SystemExit(1)
    if service is not None and service not in model.services:
        raise UserError(f"stack {stack} has no service {service}. Fix: use one of "
                        f"{', '.join(sorted(model.services))}.")
    chosen = [service] if service else sorted(model.services)
    data = {"stack": stack, "services": {
        name: {"configmap": svc.flags.name if svc.flags else None,
               "flags": [v.as_dict() for v in describe(svc.spec.flags)]}
        for name in chosen if (svc := model.services[name]).flags or service
    }}
    emit(data, fmt, render_table)


def _gets(flag: dict[str, Any]) -> str:
    if flag["state"] == "DISABLED":
        return "code default"
    if flag["split"] is None:
        return f"by rules, else {flag['defaultVariant']}"
    return ", ".join(f"{v} {p:g}%" for v, p in flag["split"].items())


def _rollout(flag: dict[str, Any]) -> str:
    r = flag["rollout"]
    if not r:
        return ""
    steps = " -> ".join(f"[{s}]" if s == r["percent"] else str(s) for s in r["steps"])
    return f"{r['variant']} {r['percent']}%: {steps}"


def render_table(data: dict[str, Any]) -> None:
    console = plain_console()
    print_table(console, f"stack {data['stack']}: flags",
                ("flag", "state", "each variant gets", "rollout", "targeting"),
                [(f"{name}/{flag['flag']}", flag["state"], _gets(flag), _rollout(flag),
                  flag["targeting"])
                 for name, svc in data["services"].items() for flag in svc["flags"]])
    for name, svc in data["services"].items():
        if svc["configmap"]:
            console.print(f"{name}: ConfigMap {svc['configmap']} (stable name, updated in "
                          "place; flagd reloads it live)")
