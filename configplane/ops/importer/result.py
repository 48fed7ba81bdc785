"""An import's result as file edits, judged by `validate` before anything is written.

`import_edits` turns a proposal into the text of every file it changes (the service's catalog
files, the declarations added to Pulumi.yaml), prepared in full. `result_problems` runs the
validation pipeline on the project as it would be after those edits, in a scratch copy of
the platform's files and the service's directory, with each secure key the import asks you
to set standing in as set: what it reports is what `validate` would report once the printed
`pulumi config set --secret` commands have run. `import --write` writes nothing while there
is any; the dry run prints them. Whatever the inputs hold, import does not leave files that
`validate` refuses.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from configplane.inputs import (
    CATALOG_DIR,
    DEFAULTS_FILE,
    NAMESPACE,
    PROJECT_FILE,
    SERVICES_KEY,
    YamlError,
    load,
    stack_file_name,
)
from configplane.model import secure_values_stack
from configplane.ops.importer.entry import ImportProblem
from configplane.ops.importer.proposal import ImportProposal
from configplane.ops.importer.yamledit import add_declarations, add_grants
from configplane.projectfiles import ProjectFileError, read_bytes, read_text
from configplane.validation import load_or_issues

# What `pulumi config set --secret` leaves: ciphertext (the value's bytes never matter here).
_SET = base64.b64encode(bytes(32)).decode()


def catalog_text(service: str, file: str, document: Any) -> str:
    """A catalog file's text: the document in block style, or a commented `null`."""
    if document is None:
        stack = Path(file).stem
        return (f"# {service} is not in {stack} yet: import it there (`configplane import "
                f"{service} --stack {stack} --from ...`)\n# or replace this `null` with its "
                f"{stack} overlay.\nnull\n")
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False,
                          allow_unicode=True, width=1000)


def import_edits(project_dir: Path, plan: ImportProposal) -> dict[str, str]:
    """Every file the import changes (relative path -> new text), prepared in full."""
    stack_path = project_dir / stack_file_name(plan.stack)
    if not stack_path.is_file():
        raise ImportProblem(f"{stack_path.name}: file not found in {project_dir.resolve()}. Fix: "
                            f"create the stack first (`pulumi stack init {plan.stack}`).")
    # any shape: what is not a mapping is reported by the validation of the result below
    try:
        stack_document = load(project_dir, stack_path.name).document
    except YamlError as exc:
        raise ImportProblem(f"{exc}. Fix: correct it (`configplane validate --stack "
                            f"{plan.stack}` lists every problem).") from None
    config = stack_document.get("config") if isinstance(stack_document, dict) else None
    legacy = config.get(SERVICES_KEY) if isinstance(config, dict) else None
    if isinstance(legacy, dict) and plan.service in legacy:
        raise ImportProblem(f"{stack_path.name}: {SERVICES_KEY}.{plan.service} already exists. "
                            "Fix: run `configplane migrate --write` first.")
    edits = {}
    for file, document in plan.files.items():
        if (project_dir / file).exists() and not _is_null(project_dir, file):
            raise ImportProblem(f"{file} already exists. Fix: merge the printed section by "
                                "hand (run without --write).")
        text = catalog_text(plan.service, file, document)
        if yaml.safe_load(text) != document:
            raise ImportProblem(f"{file}: the section does not read back as imported. Fix: add "
                                "it by hand; run without --write to print it.")
        edits[file] = text
    project_text = read_text(project_dir, PROJECT_FILE)
    if plan.declarations:
        project_text = add_declarations(project_text, plan.declarations)
    if plan.grants:
        project_text = add_grants(project_text, plan.service, list(plan.grants))
    if plan.declarations or plan.grants:
        edits[PROJECT_FILE] = project_text
    return edits


def _is_null(project_dir: Path, file: str) -> bool:
    """A `null` overlay: the service is not in that stack (yet); the import may replace it."""
    try:
        text = read_text(project_dir, file)
        return text.strip() != "" and yaml.safe_load(text) is None
    except (OSError, ProjectFileError, UnicodeDecodeError, yaml.YAMLError):
        return False


def result_problems(project_dir: Path, plan: ImportProposal, edits: dict[str, str]) -> list[str]:
    """What `validate --stack <stack> --service <name>` would report after the edits, with the
    imported secrets set (each problem as `path (file): message`)."""
    try:
        return _scratch_problems(project_dir, plan, edits)
    except OSError as exc:  # the scratch copy, in a temporary directory: the project is as it was
        reason = exc.strerror or type(exc).__name__
        raise ImportProblem(f"cannot check the result in a scratch copy ({reason}): nothing was "
                            "changed. Fix: make room in the temporary directory ($TMPDIR), or "
                            "point TMPDIR at a writable one, and run again.") from None


def _scratch_problems(project_dir: Path, plan: ImportProposal, edits: dict[str, str]) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="configplane-import-") as scratch:
        root = Path(scratch)
        # read as validate reads them: a link out of the project is refused, not followed
        for path in project_dir.glob("Pulumi*.yaml"):
            (root / path.name).write_bytes(read_bytes(project_dir, path.name))
        for name in ("schemas", "policies"):
            if (project_dir / name).is_dir():
                (root / name).symlink_to((project_dir / name).resolve())
        (root / CATALOG_DIR).mkdir()
        if (project_dir / DEFAULTS_FILE).is_file():
            (root / DEFAULTS_FILE).write_bytes(read_bytes(project_dir, DEFAULTS_FILE))
        service_dir = project_dir / CATALOG_DIR / plan.service
        if service_dir.is_dir():
            copy = root / CATALOG_DIR / plan.service
            # links copied as links: validate judges them in the copy as in the project
            shutil.copytree(service_dir, copy, symlinks=True, copy_function=shutil.copyfile)
            for folder in (copy, *(p for p in copy.rglob("*") if p.is_dir() and not p.is_symlink())):
                folder.chmod(0o700)  # the copy is ours to edit, whatever the original's mode
        for file, text in edits.items():
            (root / file).parent.mkdir(parents=True, exist_ok=True)
            (root / file).unlink(missing_ok=True)  # a copied link is replaced, never written through
            (root / file).write_text(text)
        # where the imported secure values go: the shard the service has once imported
        plan.secret_stack = secure_values_stack(root, plan.stack, plan.service)
        if plan.secrets and not (project_dir / stack_file_name(plan.secret_stack)).is_file():
            plan.notes.append(f"{plan.service}'s secure values go to its shard's stack "
                              f"{plan.secret_stack}, which does not exist yet: run `pulumi stack "
                              f"init {plan.secret_stack}` before setting them.")
        _set_secrets(root / stack_file_name(plan.secret_stack),
                     [f"{NAMESPACE}:{s.config_key}" for s in plan.secrets])
        _, issues = load_or_issues(root, plan.stack, [plan.service])
    return [f"{issue.path or '(file)'} ({issue.file}): {issue.message}" for issue in issues]


def _set_secrets(stack_file: Path, keys: list[str]) -> None:
    """The stack file as it is once `pulumi config set --secret` has run for `keys` (a new
    shard's file is created by it)."""
    if not keys:
        return
    document = (yaml.safe_load(stack_file.read_text()) if stack_file.is_file() else None) or {}
    config = document.setdefault("config", {}) if isinstance(document, dict) else None
    if not isinstance(config, dict):
        return  # validate reports the stack file itself
    for key in keys:
        config.setdefault(key, {"secure": _SET})
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
