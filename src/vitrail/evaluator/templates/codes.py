"""Status codes of template validation: Vitrage's, verbatim, plus a few of Vitrail's own.

Vitrage's codes and texts are copied from Vitrage 15's ``status_messages.py``
*as the server really returns them*, quirks included: the text of 63 was
formatted before any version was registered, so it ends with
``dict_keys([])``; 136 ends with a space. ``python-vitrageclient`` users see
these numbers in ``template validate``, so they never change.

Vitrail's own codes (``20000`` and up) cover two cases Vitrage has no code for:

* **Vitrage crashes** (``VITRAGE_CRASH_CODES``): the validator raises an
  exception, the RPC call fails and the REST API answers HTTP 404 ``Failed to
  validate template(s).``. Vitrail reports a real problem, and sets
  ``ValidationResult.vitrage_rejects_request`` so its API can answer the same
  404.
* **Vitrail-only checks**: input limits (size, nesting, alias expansion)
  and warnings about templates Vitrage accepts but that cannot work as meant.
"""

from __future__ import annotations

from typing import Final

OK: Final = 0

#: Vitrage's ``status_msgs``, as returned by its API.
STATUS_MESSAGES: Final[dict[int, str]] = {
    0: "Template validation is OK",
    1: "template_id field contains incorrect string value.",
    2: "Duplicate template_id definition.",
    3: "template_id does not appear in the definition block.",
    4: "Syntax error: ",
    5: "Invalid yaml format: ",
    20: "definitions section must contain entities field.",
    21: "definitions section is a mandatory section.",
    41: "Entity definition must contain template_id field.",
    42: "Entity definition must contain category field.",
    43: "At least one entity must be defined.",
    45: "Invalid entity category. Category must be from types: ['RESOURCE', 'ALARM']",
    46: "Entity field is required.",
    47: "Invalid regular expression defined in field:",
    60: "metadata section must contain id field.",
    62: "metadata is a mandatory section.",
    63: "Unsupported version. Version must be one of: dict_keys([])",
    64: "metadata section must contain a type field starting from version 2. "
    "Type must be one of: ['standard', 'definition', 'equivalence']",
    65: "Invalid template type. Type must be one of: ['standard', 'definition', 'equivalence']",
    66: "Missing template type. Type must be one of: ['standard', 'definition', 'equivalence']",
    80: "scenarios is a mandatory section.",
    81: "At least one scenario must be defined.",
    82: "scenario field is required.",
    83: "Scenario definition must contain condition field.",
    84: "Scenario definition must contain actions field.",
    85: "Failed to convert condition.",
    86: "Not operator can be used only on relationships.",
    101: "Relationship field is required.",
    102: "Relationship definition must contain source field.",
    103: "Relationship definition must contain target field.",
    104: "Relationship definition must contain template_id field.",
    120: "Invalid action type. Action type must be from types: "
    "['set_state', 'raise_alarm', 'add_causal_relationship', 'mark_down', 'execute_mistral']",
    121: "At least one action must be defined.",
    122: "Action field is required.",
    123: "Action definition must contain action_type field.",
    124: "Action definition must contain action_target field.",
    125: "raise_alarm action must contain alarm_name field in properties block.",
    126: "raise_alarm action must contain severity field in properties block.",
    127: "raise_alarm action must contain target field in target_action block",
    128: "set_state action must contain state field in properties block.",
    129: "set_state action must contain target field in target_action block.",
    130: "add_causal_relationship action must contain target and source field in target_action block.",
    131: "mark_down action must contain 'target' field in 'target_action' block.",
    132: "add_causal_relationship action requires action_target to be ALARM",
    133: "execute_mistral action must contain workflow field in properties block",
    134: "condition can not contain only 'not' clauses",
    135: "condition must contain a common entity for all 'or' clauses",
    136: "Input parameters for the Mistral workflow in execute_mistral action must be placed under an 'input' block ",
    137: "Functions are supported only from version 2",
    138: "Only open or close parenthesis exists. Did you try to use a function?",
    140: "At least one template must be included",
    141: "Name field is unspecified for include",
    142: "Trying to include a template that does not exist",
    143: "A template definition file cannot contain 'includes' or 'scenarios' blocks",
    160: "Parameters are supported only from version 2",
    161: "get_param called for a parameter that is not defined in the 'parameters' block",
    162: "malformed get_param() clause",
    163: "Failed to resolve parameter",
    10100: "Action must contain a 'target' property",
    10101: "Action 'target' must match an entity id",
    10102: "Action must contain a 'source' property",
    10103: "Action 'source' must match an entity id",
    10104: "raise_alarm action must contain an 'alarm_name' property",
    10105: "execute_mistral action must contain 'workflow' property",
    10107: "The property 'causing_alarm' in raise_alarm action must match an entity id",
    10200: "Condition contains an unknown entity id",
}

# -- Vitrail's codes ---------------------------------------------------------------

#: Vitrage crashes on these inputs and its API answers HTTP 404 (see the module docstring).
NO_METADATA: Final = 20001
UNKNOWN_TYPE_VALUE: Final = 20002
V3_NO_ENTITIES: Final = 20003
V2_NO_RELATIONSHIP_TYPE: Final = 20004
V2_NO_PROPERTIES: Final = 20005
EMPTY_ACTION: Final = 20006
MISTRAL_INPUT_NOT_TEXT: Final = 20007
CONDITION_NOT_BOOLEAN: Final = 20008
V3_DEFINITION: Final = 20009
BROKEN_DEFINITION_TEMPLATE: Final = 20010
PARAMETER_DEFAULT_UNUSABLE: Final = 20011
UNUSABLE_VALUE: Final = 20012
NOT_A_MAPPING: Final = 20013

#: Vitrail-only: a template Vitrage accepts but that cannot work as written (warnings).
WARNING: Final = 21000

VITRAIL_MESSAGES: Final[dict[int, str]] = {
    NO_METADATA: "metadata section is missing or is not a mapping",
    UNKNOWN_TYPE_VALUE: "Unknown template type",
    V3_NO_ENTITIES: "entities is a mandatory section",
    V2_NO_RELATIONSHIP_TYPE: "Relationship definition must contain relationship_type field.",
    V2_NO_PROPERTIES: "Action definition must contain a properties block",
    EMPTY_ACTION: "Action item must contain exactly one action",
    MISTRAL_INPUT_NOT_TEXT: "execute_mistral input values must be strings",
    CONDITION_NOT_BOOLEAN: "Condition is not a boolean expression of entities and relationships",
    V3_DEFINITION: "A definition template must be written in version 1 or 2",
    BROKEN_DEFINITION_TEMPLATE: "An included definition template is malformed",
    PARAMETER_DEFAULT_UNUSABLE: "A parameter declared as a plain string has no default value",
    UNUSABLE_VALUE: "Value of the wrong kind",
    NOT_A_MAPPING: "A template must be a mapping",
    WARNING: "Template accepted, but",
}

VITRAGE_CRASH_CODES: Final = frozenset(
    (
        NO_METADATA,
        UNKNOWN_TYPE_VALUE,
        V3_NO_ENTITIES,
        V2_NO_RELATIONSHIP_TYPE,
        V2_NO_PROPERTIES,
        EMPTY_ACTION,
        MISTRAL_INPUT_NOT_TEXT,
        CONDITION_NOT_BOOLEAN,
        V3_DEFINITION,
        BROKEN_DEFINITION_TEMPLATE,
        PARAMETER_DEFAULT_UNUSABLE,
        UNUSABLE_VALUE,
        NOT_A_MAPPING,
    )
)

#: Vitrage's ``description`` of a result, by the step that produced it.
SYNTAX: Final = "Template syntax validation"
CONTENT: Final = "Template content validation"
CUSTOM: Final = "Template validation"
#: What Vitrage's API answers when Vitrage itself fails on the template.
VITRAGE_CRASH_REPLY: Final = "Failed to validate template(s)."


def message(code: int) -> str:
    """The text of any code, Vitrage's or Vitrail's."""
    if code in STATUS_MESSAGES:
        return STATUS_MESSAGES[code]
    return VITRAIL_MESSAGES[code]
