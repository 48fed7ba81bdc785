"""Adopt existing configuration: a `.env` file or Kubernetes ConfigMap/Secret manifests.

The result is a service's files: for a new service its base (services/<name>/service.yaml,
with its owners) and the stack's overlay, split by the parity rules, and a `null` overlay
for each other stack; for an existing one, the stack's overlay. Every secret
is moved out of it: the keys of a Secret manifest always, and any ConfigMap or .env value the
pack's plaintext detector flags. A secret becomes `source: secure` with a `config_key`,
declared in Pulumi.yaml (`type: string`, `secret: true`); its value is never printed nor
written. The user sets it with a pipe that reads the input file when it runs:

    configplane import --from billing.env --emit-value STRIPE_API_KEY \\
      | pulumi config set --secret configplane:billingStripeApiKey --stack dev

`--emit-value` parses the file exactly as the import did (quotes, base64) and refuses to write
to a terminal; `pulumi config set` reads a piped value from stdin and drops one trailing
newline, which `--emit-value` adds, so values ending in a newline survive.

The seams, one module each:
- `envfile`: `.env` files, parsed with python-dotenv's parser (line numbers kept);
- `manifests`: ConfigMap and Secret manifests (PyYAML, base64 decoded);
- `plan`: what becomes config and what a secret reference, the declarations, the commands;
- `yamledit`: the declarations and grants added to Pulumi.yaml (and the secret spec `secret
  set` adds to a service's file) with ruamel.yaml's round-trip editor (comments and layout
  kept; each edit is checked to change nothing else);
- `result`: the edits as file texts, and what `validate` would say of the project after them
  (import writes nothing while it would say anything). The command writes them.
"""

from configplane.ops.importer.entry import Entry, ImportProblem
from configplane.ops.importer.proposal import (
    STORES,
    ImportedSecret,
    ImportProposal,
    catalog_file,
    config_key_for,
    emit_value,
    plan_import,
    read_input,
)
from configplane.ops.importer.result import catalog_text, import_edits, result_problems
from configplane.ops.importer.yamledit import GRANTS_PATH, add_declarations, add_grants, add_secret

__all__ = [
    "GRANTS_PATH", "STORES", "Entry", "ImportProposal", "ImportProblem", "ImportedSecret",
    "add_declarations", "add_grants", "add_secret",
    "catalog_file", "catalog_text", "config_key_for", "emit_value", "import_edits", "plan_import",
    "read_input", "result_problems",
]
