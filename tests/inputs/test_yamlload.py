"""The YAML loader: bounded, UTF-8 only, string keys, duplicates with path and line; and the
CLI turns each refusal into one clean message naming the file that holds the problem."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.cli.commands.validate import command as validate
from configplane.inputs import MAX_ALIAS_NODES, MAX_DEPTH, YamlError, load_bytes, load_text


def billion_laughs(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghijklm"[:levels - 1]:
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


def refused(text: str) -> YamlError:
    with pytest.raises(YamlError) as caught:
        load_text(text, "services/api/dev.yaml")
    return caught.value


def test_billion_laughs_is_refused_before_anything_is_built():
    start = time.perf_counter()
    error = refused(billion_laughs())
    assert time.perf_counter() - start < 0.5  # 9**9 values were never constructed
    assert str(error) == (f"services/api/dev.yaml:1: aliases expand to more than {MAX_ALIAS_NODES} "
                          "extra values (an alias bomb?). Fix: write the values out, or use fewer "
                          "aliases.")


def test_modest_aliases_and_merge_keys_still_work():
    loaded = load_text("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n", "f")
    assert loaded.document == {"base": {"x": 1, "y": 2}, "use": {"x": 1, "y": 3},
                               "list": [{"x": 1, "y": 2}, {"x": 1, "y": 2}]}
    assert loaded.duplicates == []  # an own key over a merged one is not a duplicate


def test_a_recursive_alias_is_refused():
    assert "refers to the mapping or list that contains it" in str(refused("a: &a [*a]\n"))


@pytest.mark.parametrize("text", [
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    "[" * 200_000 + "]" * 200_000,  # deep enough to crash libyaml's recursive composer
    "a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, MAX_DEPTH + 3)),
])
def test_deep_nesting_is_refused_cleanly(text):
    assert f"nested deeper than {MAX_DEPTH} levels" in str(refused(text))


def test_nesting_up_to_the_limit_is_fine():
    depth = MAX_DEPTH - 1
    assert load_text("[" * depth + "]" * depth, "f").document is not None


@pytest.mark.parametrize(("text", "shown", "kind"), [
    ("tenants:\n  no:\n    config: {}\n", "no", "a boolean"),
    ("config:\n  5: x\n", "5", "an integer"),
    ("on: 1\n", "on", "a boolean"),
    ("~: 1\n", "~", "null"),
    ("2024-01-01: x\n", "2024-01-01", "a date"),
])
def test_keys_must_be_strings(text, shown, kind):
    error = refused(text)
    assert f"key `{shown}`" in str(error) and f"is read as {kind} (YAML 1.1)" in str(error)
    assert str(error).endswith(f'Fix: quote it: "{shown}".')


def test_quoted_keys_are_strings():
    assert load_text('"no": 1\n"5": 2\n', "f").document == {"no": 1, "5": 2}


def test_complex_keys_are_refused():
    assert str(refused("config:\n  ? [a, b]\n  : 1\n")) == (
        "services/api/dev.yaml:2: a complex key (a list used as a key) under config. "
        "Fix: use a plain string key.")


def test_duplicates_have_the_full_key_path_and_line():
    loaded = load_text("config:\n  A: 1\nsecrets:\n  K:\n    store: vault\n    store: aws\n"
                       "config:\n  B: 2\n", "f")
    assert loaded.duplicates == [("secrets.K.store", 6), ("config", 7)]
    assert loaded.lines[("secrets", "K", "store")] == 6


@pytest.mark.parametrize(("data", "message"), [
    (b"config:\n  A: caf\xe9\n", "not UTF-8: invalid byte 0xe9 at byte offset 16"),
    ("config: {}\n".encode("utf-16"), "file is UTF-16 (byte-order mark at byte 0)"),
])
def test_files_must_be_utf8(data, message):
    with pytest.raises(YamlError) as caught:
        load_bytes(data, "services/api/service.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("services/api/service.yaml")


def test_a_utf8_byte_order_mark_is_accepted():
    assert load_bytes("\ufeffa: 1\n".encode(), "f").document == {"a": 1}


def test_syntax_errors_name_line_and_column_but_never_the_text():
    error = refused("config:\n  A: canary-Yaml-Hx7Q\n   B: [\n")
    assert str(error).startswith("services/api/dev.yaml:3: not valid YAML, column")
    assert "canary" not in str(error)


keys = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1,
               max_size=8)
values = st.recursive(
    # NEL and the Unicode line/paragraph separators are line breaks to YAML 1.1: PyYAML's own
    # dumper writes them unescaped inside quotes and its loader folds them (not ours to test);
    # a lone surrogate is no character a UTF-8 file can hold (its `\uD800` escape is refused)
    st.none() | st.booleans() | st.integers()
    | st.text(st.characters(exclude_characters="\x85\u2028\u2029", exclude_categories=["Cs"]),
              max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, values, max_size=4))
def test_round_trip_of_any_string_keyed_document(document):
    text = yaml.safe_dump(document, allow_unicode=True)
    loaded = load_text(text, "f")
    assert (loaded.document or {}) == document
    assert loaded.duplicates == []


# --- through the CLI: one message, the right file, exit 1, no traceback ---------------------

@pytest.mark.parametrize(("file", "data", "expected"), [
    ("services/api/dev.yaml", billion_laughs().encode(), "alias bomb"),
    ("services/worker/prod.yaml", b"tenants:\n  no:\n    config: {}\n", "quote it"),
    ("services/web/service.yaml", b"app_schema: web-frontend\nconfig:\n  X: \xff\n",
     "invalid byte 0xff at byte offset 38"),
    ("services/api/service.yaml", b"config:\n  ? [a, b]\n  : 1\n", "complex key"),
])
def test_validate_names_the_file_that_holds_the_problem(project, file, data, expected):
    (project / file).write_bytes(data)
    stack = file.rsplit("/", 1)[1].split(".")[0]
    stack = "prod" if stack == "service" else stack
    result = CliRunner().invoke(validate, ["--stack", stack, "--project-dir", str(project),
                                           "--format", "json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert [e["file"] for e in report["errors"]] == [file]
    assert expected in report["errors"][0]["message"]
    assert "Traceback" not in result.output


def test_a_stack_file_problem_names_the_stack_file(project):
    (project / "Pulumi.dev.yaml").write_bytes(b"config:\n  aws:region: eu-\xffwest-1\n")
    result = CliRunner().invoke(validate, ["--stack", "dev", "--project-dir", str(project),
                                           "--format", "json"])
    assert result.exit_code == 1
    [error] = json.loads(result.output)["errors"]
    assert error["file"] == "Pulumi.dev.yaml"
    assert (error["line"], error["message"]) == (
        2, "not UTF-8: invalid byte 0xff at byte offset 25. Fix: save the file as UTF-8.")


hostile = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.sampled_from([billion_laughs(), "a: &a [*a]\n", "[" * 300 + "]" * 300, "? [a]\n: 1\n",
                     "no: 1\n", "config: [1, 2]\n", "config:\n  A: 1\n  A: 2\n", "null\n",
                     "- 1\n- 2\n", "secrets: {X: 5}\n", "&a x: *a\n"]).map(str.encode),
)


@settings(max_examples=60, deadline=None)
@given(data=hostile)
def test_any_bytes_in_a_service_file_give_exit_0_or_1_and_no_traceback(tmp_path_factory, data):
    import shutil

    from tests.conftest import REPO
    project = tmp_path_factory.mktemp("fuzz") / "project"
    shutil.copytree(REPO / "services", project / "services")
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "schemas", project / "schemas")
    (project / "services" / "api" / "dev.yaml").write_bytes(data)
    result = CliRunner().invoke(validate, ["--stack", "dev", "--project-dir", str(project),
                                           "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    report = json.loads(result.output)
    assert all(e["file"] for e in report["errors"])
