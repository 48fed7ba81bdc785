"""`configplane drift`: `pulumi preview --refresh --expect-no-changes` as a drift report."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from configplane.cli.boundary import UserError, Verb, protect_stack, redactor
from configplane.cli.commands.drift_render import render
from configplane.cli.commands.drift_report import REPORT_FORMAT_OPTION, show
from configplane.cli.commands.options import PROJECT_DIR_OPTION
from configplane.cli.installed import require_extra
from configplane.ops import EXIT_DRIFT, EXIT_OK, DriftInputError, build_report, parse_preview

INSTALL_HINT = (
    "the Pulumi CLI is not installed: no `pulumi` on PATH. `configplane drift` runs "
    "`pulumi preview --refresh --expect-no-changes` through the Automation API, which drives "
    "the CLI. Install it with `curl -fsSL https://get.pulumi.com | sh` (see "
    "https://www.pulumi.com/docs/install/; in GitHub Actions: `uses: pulumi/actions`), then "
    "log in to the stack's backend. To read a preview made elsewhere use `configplane "
    "drift-report FILE`; for an offline plan with no cloud use `configplane plan --stack NAME`."
)


def _state(state: Any) -> dict[str, Any] | None:
    if state is None:
        return None
    return {"type": state.type, "urn": state.urn, "inputs": state.inputs, "outputs": state.outputs}


def event_dict(event: Any) -> dict[str, Any]:
    """The parts of an Automation API EngineEvent the report reads, in the event-log JSON shape
    (sdk/go/common/apitype/events.go), so both inputs go through one parser."""
    out: dict[str, Any] = {"sequence": event.sequence}
    if event.policy_event:
        p = event.policy_event
        out["policyEvent"] = {
            "policyPackName": p.policy_pack_name,
            "policyName": p.policy_name,
            "enforcementLevel": p.enforcement_level,
            "resourceUrn": p.resource_urn,
            "message": p.message,
        }
    if event.res_outputs_event:
        m = event.res_outputs_event.metadata
        out["resOutputsEvent"] = {
            "metadata": {
                "op": getattr(m.op, "value", m.op),
                "urn": m.urn,
                "type": m.type,
                "diffs": m.diffs,
                "detailedDiff": {
                    k: {"diffKind": getattr(d.diff_kind, "value", d.diff_kind),
                        "inputDiff": d.input_diff}
                    for k, d in (m.detailed_diff or {}).items()
                },
                "old": _state(m.old),
                "new": _state(m.new),
            }
        }
    return out


def _failure(error: Exception) -> tuple[int | None, str]:
    """Exit code and stderr tail of a failed CLI run. The SDK's CommandError only keeps the
    text of its CommandResult (`\\n code: N\\n stdout: ...\\n stderr: ...`)."""
    text = str(error)
    code = re.search(r"^\s*code: (-?\d+)\s*$", text, re.MULTILINE)
    stderr = text.split("\n stderr: ", 1)[1] if "\n stderr: " in text else ""
    tail = " | ".join(line.strip() for line in stderr.strip().splitlines()[-6:] if line.strip())
    return (int(code.group(1)) if code else None), tail


def run_preview(
    stack_name: str,
    project_dir: Path,
    policy_packs: list[str],
    policy_pack_configs: list[str],
    on_event: Callable[[Any], None],
) -> tuple[int | None, str, str]:
    """Select the stack and run the refresh preview; returns (exit code, stdout, stderr tail)."""
    from pulumi import automation as auto  # the SDK is slow to import: only when needed

    try:
        stack = auto.select_stack(stack_name=stack_name, work_dir=str(project_dir))
    except auto.errors.StackNotFoundError:
        raise UserError(
            f"no stack named {stack_name!r} in {project_dir} for the logged-in backend; "
            f"check `pulumi stack ls` (or `pulumi login`), or create it with "
            f"`pulumi stack init {stack_name}`"
        ) from None
    except auto.errors.CommandError as e:
        code, tail = _failure(e)
        raise UserError(
            f"pulumi could not select stack {stack_name!r} (exit {code}): {tail}"
        ) from None

    lines: list[str] = []
    try:
        stack.preview(
            refresh=True,
            expect_no_changes=True,
            json=True,
            policy_packs=policy_packs or None,
            policy_pack_configs=policy_pack_configs or None,
            on_event=on_event,
            on_output=lines.append,
        )
        return EXIT_OK, "\n".join(lines), ""
    except auto.errors.CommandError as e:
        code, tail = _failure(e)
        return code, "\n".join(lines), tail
    except RuntimeError as e:  # the SDK's "summary event never found": no usable event stream
        raise UserError(f"pulumi preview ended without its engine events ({e})") from None


@click.command("drift", cls=Verb)
@click.option("--stack", "stack_name", required=True, metavar="NAME", help="Stack to check.")
@PROJECT_DIR_OPTION
@click.option(
    "--policy-pack-config",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Policy config; default: policies/config/<stack>.json when it exists.",
)
@click.option("--no-policy", is_flag=True, help="Run without the policy pack.")
@REPORT_FORMAT_OPTION
def command(
    stack_name: str, project_dir: Path, policy_pack_config: Path | None, no_policy: bool, fmt: str
) -> None:
    """Check a deployed stack for drift: refresh, then preview with no changes expected.

    Runs `pulumi preview --refresh --expect-no-changes` with the policy pack through the
    Automation API (the Pulumi CLI must be installed and logged in) and prints the same
    report as `configplane drift-report`. Exit status: 0 no drift (or only secret
    rotations), 7 drift or changes, 1 errors or mandatory policy violations.

    Example: configplane drift --stack prod --format markdown
    """
    require_extra("plan", "drift")
    project_dir = project_dir.resolve()
    if not (project_dir / "Pulumi.yaml").is_file():
        raise UserError(f"{project_dir}: no Pulumi.yaml here; pass the project with --project-dir")
    packs, configs = [], []
    if not no_policy:
        pack = project_dir / "policies"
        if not (pack / "PulumiPolicy.yaml").is_file():
            raise UserError(f"{pack}: no PulumiPolicy.yaml; pass --no-policy to run without it")
        packs.append(str(pack))
        default_config = pack / "config" / f"{stack_name}.json"
        if policy_pack_config is None and default_config.is_file():
            policy_pack_config = default_config
        if policy_pack_config is not None:
            if not policy_pack_config.is_file():
                raise UserError(f"{policy_pack_config}: no such policy config file")
            configs.append(str(policy_pack_config.resolve()))
    elif policy_pack_config is not None:
        raise UserError("--policy-pack-config needs the policy pack; drop --no-policy")
    if shutil.which("pulumi") is None:
        raise UserError(INSTALL_HINT)

    protect_stack(project_dir, stack_name)
    events: list[dict[str, Any]] = []
    code, stdout, tail = run_preview(
        stack_name, project_dir, packs, configs, lambda e: events.append(event_dict(e))
    )
    redactor().foreign(tail)  # pulumi's own error output: foreign text
    try:
        preview = parse_preview(stdout, "the output of `pulumi preview --json`")
    except DriftInputError as e:
        if code in (EXIT_OK, EXIT_DRIFT):
            raise UserError(str(e)) from None
        raise UserError(f"pulumi preview failed (exit {code}): {tail}") from None
    report = build_report(preview, events)
    redactor().foreign(report.as_dict())
    if code not in (EXIT_OK, EXIT_DRIFT):
        # pulumi stopped for a reason the report may not show (auth, provider, policy): say it
        click.echo(render(report, fmt), nl=False)
        raise UserError(f"pulumi preview failed (exit {code}): {tail or 'no error output'}")
    show(report, fmt)
