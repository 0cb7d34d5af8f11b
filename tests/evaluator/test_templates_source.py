"""Reading templates: YAML text as python-vitrageclient reads it, with limits and line numbers."""

from __future__ import annotations

import pytest

from vitrail import yamlnodes
from vitrail.evaluator.templates import codes, source, validate

TEMPLATE = """\
metadata:
  version: 3
  name: lines
  type: standard
entities:
  host:
    type: nova.host
scenarios:
  - condition: host
    actions:
      - mark_down:
          target: host
"""


def test_every_scalar_is_text_as_with_base_loader() -> None:
    read = source.read("a: 3\nb: true\nc: ~\nd:\ne: !!int 7\nf: '01'\n<<: {g: h}\n")

    assert read.document == {"a": "3", "b": "true", "c": "~", "d": "", "e": "7", "f": "01", "<<": {"g": "h"}}


def test_lines_of_keys_and_items() -> None:
    read = source.read(TEMPLATE)

    assert read.lines[("metadata", "name")] == 3
    assert read.lines[("scenarios", 0)] == 9
    assert read.lines[("scenarios", 0, "actions", 0, "mark_down", "target")] == 12


def test_bytes_are_read_as_utf8() -> None:
    assert validate(TEMPLATE.encode()).ok
    result = validate(b"metadata: \xff\n")
    assert (result.status_code, result.problems[0].line) == (5, 1)


def test_a_yaml_error_is_code_5_with_its_line() -> None:
    result = validate("metadata:\n  name: [unclosed\nentities: {}\n")

    assert result.status_code == 5
    assert result.problems[0].line == 3
    assert result.message.startswith("Invalid yaml format: line 3:")


def test_a_repeated_key_keeps_the_last_value_and_warns() -> None:
    result = validate(TEMPLATE.replace("  name: lines\n", "  name: first\n  name: lines\n"))

    assert result.ok
    assert result.name == "lines"
    assert result.warnings[0].line == 4
    assert "written twice (first at line 3)" in result.warnings[0].message


def test_a_mapping_key_is_refused() -> None:
    result = validate("? [a, b]\n: c\n")

    assert result.status_code == 5
    assert "unhashable key" in result.message


def test_too_large_text_is_refused_before_parsing() -> None:
    result = validate("#" * (source.MAX_TEXT_SIZE + 1))

    assert result.status_code == 5
    assert "larger than the limit" in result.message


def test_deep_nesting_is_refused_without_recursion() -> None:
    depth = 100_000  # PyYAML's own composer would recurse (libyaml's would crash the process)
    result = validate("a: " + "[" * depth + "]" * depth)

    assert result.status_code == 5
    assert f"nested more than {source.MAX_NESTING} levels" in result.message


def test_alias_bombs_are_refused() -> None:
    levels = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 7)]

    result = validate("\n".join(levels))

    assert result.status_code == 5
    assert "YAML nodes" in result.message


def test_several_documents_are_refused() -> None:
    assert validate("a: 1\n---\nb: 2\n").status_code == 5


@pytest.mark.parametrize(("text", "code"), [("", codes.NOT_A_MAPPING), ("- a\n- b\n", codes.NOT_A_MAPPING)])
def test_a_template_must_be_a_mapping(text: str, code: int) -> None:
    result = validate(text)

    assert (result.status_code, result.vitrage_rejects_request) == (code, True)


def test_a_mapping_is_copied_not_changed() -> None:
    document = {"metadata": {"version": 3, "name": "n", "type": "standard"}}

    result = validate(document)

    assert result.status_code == 63  # a JSON integer version, as Vitrage sees it
    assert result.document == document
    assert result.document is not document


def test_unsupported_python_values_are_refused() -> None:
    assert validate({"metadata": {"name": {1, 2}}}).status_code == 5


def test_yamlnodes_builds_data_without_recursion() -> None:
    root, error = yamlnodes.compose("a: [1, {b: c}]\n", "x.yaml", 10)
    assert error is None and root is not None

    data = yamlnodes.to_data(root, max_nodes=100, max_depth=10)

    assert data.value == {"a": ["1", {"b": "c"}]}
    assert data.lines == {("a",): 1, ("a", 0): 1, ("a", 1): 1, ("a", 1, "b"): 1}


def test_yamlnodes_typed_scalars_for_static_files() -> None:
    root, _ = yamlnodes.compose("a: 3\nb: on\n", "x.yaml", 10)
    assert root is not None

    data = yamlnodes.to_data(root, scalar=yamlnodes.typed_scalar, max_nodes=100, max_depth=10)

    assert data.value == {"a": 3, "b": "on"}
