"""Vitrage's template language (versions 1, 2 and 3): validation exactly as Vitrage 15, loading into the model.

Public API::

    validate(source, *, template_type=None, params=None, definitions=None, file_name=None) -> ValidationResult
    load(source, *, params=None, definitions=None, template_type=None, file_name=None) -> Template
    resolve(document, params) -> dict            # what "template add" stores
    parse_for_evaluator(document, params, definitions) -> Template

``source`` is YAML text or bytes (read as python-vitrageclient reads files:
every scalar a string, with size and nesting limits) or an already parsed
mapping (the JSON body of an API request). A :class:`ValidationResult` lists
*every* problem with its location (template, scenario, field, YAML line) and
carries what Vitrage's ``template validate`` would have answered
(``status_code``, ``description``, ``message``, or
``vitrage_rejects_request`` where Vitrage fails with HTTP 404). Status codes
are in :mod:`vitrail.evaluator.templates.codes`.
"""

from vitrail.evaluator.templates import codes
from vitrail.evaluator.templates.problems import TemplateInvalid, TemplateProblem, ValidationResult
from vitrail.evaluator.templates.validation import load, parse_for_evaluator, resolve, validate

__all__ = [
    "TemplateInvalid",
    "TemplateProblem",
    "ValidationResult",
    "codes",
    "load",
    "parse_for_evaluator",
    "resolve",
    "validate",
]
