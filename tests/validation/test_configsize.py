"""PULUMI_CONFIG as the Pulumi CLI builds it: its size, the kernel's limit, the budget."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import subprocess

import pytest
import yaml
from click.testing import CliRunner

from benchmarks.fleet import generate
from configplane.cli.commands.validate import command as validate
from configplane.inputs import StackInputs, StackValue, estimate_plaintext_length, read_stack_files
from configplane.validation import CONFIG_BUDGET, ENV_NAME, MAX_ARG_STRLEN, cli_config, config_size, go_json
from tests.conftest import REPO
from tests.program.test_sample_secrets import SAMPLE_PASSPHRASE, decrypt


def test_go_json_escapes_as_go_does():
    assert go_json({"b": "<a & b>", "a": {"y": 1, "x": [True, None]}, "c": "é\u2028"}) == (
        '{"a":{"x":[true,null],"y":1},"b":"\\u003ca \\u0026 b\\u003e","c":"é\\u2028"}')


def test_cli_config_holds_every_key_as_a_string():
    inputs = StackInputs("dev", "Pulumi.yaml", "Pulumi.dev.yaml",
                         project_values={"p:obj": {"k": [1, 2]}, "p:s": "one"},
                         values={"p:s": StackValue(False, "two"), "p:n": StackValue(False, 5),
                                 "p:secret": StackValue(True, None, 7)})
    assert cli_config(inputs) == {"p:obj": '{"k":[1,2]}', "p:s": "two", "p:n": "5",
                                  "p:secret": "xxxxxxx"}
    encoded = '{"p:n":"5","p:obj":"{\\"k\\":[1,2]}","p:s":"two","p:secret":"xxxxxxx"}'
    assert config_size(inputs).total == len(f"{ENV_NAME}={encoded}") + 1


def test_decrypted_length_is_estimated_exactly_from_passphrase_ciphertexts():
    document = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    _, salt, _ = document["encryptionsalt"].split(":", 2)
    key = hashlib.pbkdf2_hmac("sha256", SAMPLE_PASSPHRASE, base64.b64decode(salt), 1_000_000, 32)
    secure = {k: v["secure"] for k, v in document["config"].items()
              if isinstance(v, dict) and set(v) == {"secure"}}
    # Two services' secrets, the platform's database root login (platform.database) and its
    # Vault's token reviewer (platform.vault).
    assert sorted(secure) == ["configplane:shopVaultDbPassword",  # the services' are in their
                              "configplane:vaultTokenReviewerJwt"]  # shards' files (fleet.md)
    for ciphertext in secure.values():
        assert estimate_plaintext_length(ciphertext) == len(decrypt(key, ciphertext).encode())
    lengths = {k: v.length for k, v in read_stack_files(REPO, "dev").values.items()
               if v.secure and k in secure}
    assert lengths == {k: estimate_plaintext_length(document["config"][k]["secure"])
                       for k in lengths}


def _padded(total: int) -> StackInputs:
    """Inputs whose PULUMI_CONFIG environment string is exactly `total` bytes."""
    base = StackInputs("dev", "Pulumi.yaml", "Pulumi.dev.yaml",
                       values={"p:pad": StackValue(False, "")})
    missing = total - config_size(base).total
    return StackInputs("dev", "Pulumi.yaml", "Pulumi.dev.yaml",
                       values={"p:pad": StackValue(False, "a" * missing)})


def test_the_size_is_what_the_kernel_counts():
    """At exactly MAX_ARG_STRLEN bytes a process starts; one byte more and execve fails with
    E2BIG: the count is the kernel's (NAME=, value, NUL)."""
    for total, fits in ((MAX_ARG_STRLEN, True), (MAX_ARG_STRLEN + 1, False)):
        inputs = _padded(total)
        assert config_size(inputs).total == total
        env = {ENV_NAME: go_json(cli_config(inputs))}
        if fits:
            assert subprocess.run(["/bin/true"], env=env).returncode == 0
        else:
            with pytest.raises(OSError) as caught:
                subprocess.run(["/bin/true"], env=env)
            assert caught.value.errno == errno.E2BIG


def test_sample_stacks_are_far_below_the_budget():
    for stack in ("dev", "staging", "prod"):
        # ~5 KiB: the platform settings include two public CA certificates (Kubernetes API,
        # database), ~0.7 KiB each; the budget is 128 KiB
        assert config_size(read_stack_files(REPO, stack)).total < 6 * 1024


def run_validate(project, stack="prod") -> tuple[int, list[dict]]:
    result = CliRunner().invoke(validate, ["--stack", stack, "--project-dir", str(project),
                                           "--format", "json"])
    return result.exit_code, json.loads(result.output)["errors"]


def test_a_fleet_in_config_fails_before_the_cli_would_and_says_what_to_move(tmp_path):
    legacy = generate(tmp_path / "legacy", 120, layout="config")
    size = config_size(read_stack_files(legacy, "prod")).total
    assert CONFIG_BUDGET < size < MAX_ARG_STRLEN  # the program could still start: we stop first
    code, found = run_validate(legacy)
    assert code == 1
    [error] = found
    assert (error["path"], error["file"]) == ("config", "Pulumi.prod.yaml")
    assert error["message"].startswith(
        f"the stack config the Pulumi CLI passes to the program and to the policy pack "
        f"(PULUMI_CONFIG, one environment variable) would be {size / 1024:.1f} KiB; Linux "
        "refuses more than 128 KiB (E2BIG) and configplane stops at 96 KiB. Fix: "
        "`configplane:defaults` takes ")
    assert "move service definitions to services/<name>/service.yaml and <stack>.yaml " \
           "(`configplane migrate --write`)" in error["message"]
    # The same fleet in the catalog: the config does not grow with it.
    catalog = generate(tmp_path / "catalog", 120)
    assert run_validate(catalog) == (0, [])
    assert config_size(read_stack_files(catalog, "prod")).total < 8 * 1024


def test_a_secure_value_per_secret_does_not_scale(project):
    path = project / "Pulumi.prod.yaml"
    document = yaml.safe_load(path.read_text())
    ciphertext = document["config"]["configplane:shopVaultDbPassword"]["secure"]
    declared = yaml.safe_load((project / "Pulumi.yaml").read_text())
    for i in range(1500):
        document["config"][f"configplane:service{i}Token"] = {"secure": ciphertext}
        # Declared, as every secure key must be (an undeclared one is an unknown key).
        declared["config"][f"configplane:service{i}Token"] = {"type": "string", "secret": True}
    path.write_text(yaml.safe_dump(document))
    (project / "Pulumi.yaml").write_text(yaml.safe_dump(declared, sort_keys=False))
    code, found = run_validate(project)
    assert code == 1
    assert [e["path"] for e in found] == ["config"], found
    [error] = found
    # The sample's four (two services' secrets, the platform's database login and Vault's
    # token reviewer) and 1500 more.
    assert "1504 `secure` values take" in error["message"]
    assert "use `source: generated` (values nobody needs to know) or `source: reference`" in \
        error["message"]
    assert ciphertext not in json.dumps(found)
