"""The entry points: validate a template like Vitrage 15, load it into Vitrail's model.

Vitrage's order, which decides its answer:

1. the template type: ``metadata.type``, else the request's ``template_type``;
   none, or a request type that differs from ``metadata.type``, is 66
   (``Unknown template type``); ``equivalence`` is not validated at all
   (status code ``""``, ``No Validation``);
2. the version: ``metadata.version`` (``'1'`` when empty), one of
   ``'1'``, ``'2'``, ``'3'`` — the strings: a JSON integer is 63;
3. the type's and version's pipeline (:mod:`.v3`, :mod:`.v2`).

Templates are given as YAML text/bytes (read like the client reads them) or
as the mapping the API received. ``load`` also does what Vitrage's ``template
add`` does after validation: resolve the parameters, drop the ``parameters``
block, and validate the result again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vitrail.evaluator.model import Template, TemplateType
from vitrail.evaluator.templates import codes, equivalence, loader, parameters, source, v2, v3
from vitrail.evaluator.templates.problems import Report, TemplateInvalid, ValidationResult

TYPES = ("standard", "definition", "equivalence")
VERSIONS = ("1", "2", "3")
_VERSION_SET = frozenset(VERSIONS)


@dataclass(slots=True)
class _Outcome:
    """What the checks learnt about the template besides its problems."""

    template_type: str | None = None
    name: str | None = None
    version: str | None = None
    equivalence: bool = False


def _check(
    document: Any,
    report: Report,
    template_type: str | None,
    params: Mapping[str, Any] | None,
    definitions: Mapping[str, Mapping[str, Any]],
) -> _Outcome:
    outcome = _Outcome(template_type=template_type)
    if not isinstance(document, dict):
        kind = "nothing" if document is None else type(document).__name__
        report.crash(codes.NOT_A_MAPPING, (), f"got {kind}")
        return outcome
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        report.crash(codes.NO_METADATA, ("metadata",), "Vitrage reads the template type there")
        return outcome
    name = metadata.get("name")
    if isinstance(name, str):
        outcome.name = report.template = name
    final_type = metadata.get("type", template_type)
    outcome.template_type = final_type if isinstance(final_type, str) else None
    if not final_type or (template_type and template_type != final_type):
        details = (
            f"metadata.type is {final_type!r} but {template_type!r} was requested"
            if template_type and final_type
            else "no metadata.type and none requested"
        )
        report.add(
            66, ("metadata", "type"), details, description=codes.CONTENT, vitrage_message="Unknown template type"
        )
        return outcome
    if final_type == "equivalence":
        outcome.equivalence = True
        equivalence.parse(document, report)
        return outcome
    if not isinstance(final_type, str) or final_type not in TYPES:
        report.crash(codes.UNKNOWN_TYPE_VALUE, ("metadata", "type"), f"{final_type!r} is not one of {list(TYPES)}")
        return outcome
    version = metadata.get("version") or "1"
    try:
        supported = version in _VERSION_SET
    except TypeError:  # Vitrage looks the version up in a dict: an unhashable one crashes it
        report.crash(codes.UNUSABLE_VALUE, ("metadata", "version"), f"{version!r} is not a version")
        return outcome
    if not supported:
        report.content(63, ("metadata", "version"), f"{version!r} is not one of {list(VERSIONS)} (as text)")
        return outcome
    outcome.version = version
    if final_type == "definition":
        v2.validate_definition(document, report, version)
    elif version == "3":
        v3.validate(document, report, params)
    else:
        v2.validate(document, report, version, params, definitions)
    return outcome


def _result(report: Report, outcome: _Outcome, document: Any) -> ValidationResult:
    problems = report.problems
    if not problems:
        return ValidationResult(
            ok=True,
            problems=[],
            warnings=report.warnings,
            status_code="" if outcome.equivalence else 0,
            description=codes.CUSTOM,
            message="No Validation" if outcome.equivalence else codes.STATUS_MESSAGES[0],
            template_type=outcome.template_type,
            name=outcome.name,
            version=outcome.version,
            document=document,
        )
    first = problems[0]
    return ValidationResult(
        ok=False,
        problems=problems,
        warnings=report.warnings,
        status_code=first.code,
        description=first.vitrage_description,
        message=first.vitrage_message,
        template_type=outcome.template_type,
        name=outcome.name,
        version=outcome.version,
        vitrage_rejects_request=first.vitrage_rejects_request,
        document=document,
    )


def _validate(
    source_: str | bytes | Mapping[str, Any],
    template_type: str | None,
    params: Mapping[str, Any] | None,
    definitions: Mapping[str, Mapping[str, Any]] | None,
    file_name: str | None,
) -> tuple[ValidationResult, Report]:
    read = source.read(source_, file_name)
    report = Report(lines=read.lines, warnings=list(read.warnings))
    if read.problems:
        report.problems.extend(read.problems)
        return _result(report, _Outcome(template_type=template_type), None), report
    outcome = _check(read.document, report, template_type, params, definitions or {})
    return _result(report, outcome, read.document), report


def validate(
    source: str | bytes | Mapping[str, Any],
    *,
    template_type: str | None = None,
    params: Mapping[str, Any] | None = None,
    definitions: Mapping[str, Mapping[str, Any]] | None = None,
    file_name: str | None = None,
) -> ValidationResult:
    """Validate one template as Vitrage's ``template validate`` does, reporting every problem.

    ``definitions`` are the definition templates a v2 template may include,
    by name; ``params`` the values for ``get_param``. When the template is
    valid, it is also loaded (parameters resolved) so that ``warnings`` says
    what Vitrail could not use as written.
    """
    result, report = _validate(source, template_type, params, definitions, file_name)
    if result.ok:
        with contextlib.suppress(TemplateInvalid):  # Vitrage's validate does not resolve parameters; add does
            _load(result, report, params, definitions or {})
    return result


def resolve(document: Mapping[str, Any], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``document`` with its parameters substituted and its ``parameters`` block dropped.

    This is what Vitrage's ``template add`` stores, after the same steps
    (``resolve_parameters``): the version decides whether there are
    functions at all (version 1 has none: any call fails, with Vitrage's odd
    status code 0), and every template is walked, whatever its type. Raises
    :class:`TemplateInvalid` when a parameter cannot be resolved.
    """
    report = Report()
    metadata = document.get("metadata")
    version = metadata.get("version") if isinstance(metadata, Mapping) else None
    try:
        if not isinstance(metadata, Mapping):
            report.crash(codes.NO_METADATA, ("metadata",), "Vitrage reads the version there")
        elif (version or "1") not in _VERSION_SET:
            report.content(63, ("metadata", "version"), f"{version!r} is not one of {list(VERSIONS)} (as text)")
        elif (version or "1") == "1":
            for path, call in parameters.calls(document):
                report.custom(0, path, call, "version 1 templates have no functions")
                break
        if not report.problems:
            return parameters.resolve(document, params)
    except parameters.ParamError as error:
        report.custom(error.code, error.path, error.details)
    except parameters.NotWalkable as error:
        report.crash(codes.UNUSABLE_VALUE, error.path, "a list item that is not a mapping")
    except (AttributeError, TypeError) as error:  # a parameter declared as text, an unhashable version
        report.crash(codes.UNUSABLE_VALUE, (parameters.PARAMETERS,), str(error))
    raise TemplateInvalid(_result(report, _Outcome(), document))


def _load(
    result: ValidationResult, report: Report, params: Mapping[str, Any] | None,
    definitions: Mapping[str, Mapping[str, Any]],
) -> Template:  # fmt: skip
    """The model of a valid template (``result.ok``); raises :class:`TemplateInvalid`."""
    document = result.document
    resolved = resolve(document, params)  # Vitrage's add walks every template for calls, even without any
    if result.template_type == "equivalence":
        document = resolved  # not validated again: Vitrage does not validate equivalences
        classes = equivalence.parse(document, Report())  # its warnings are already in ``report``
        metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
        name = metadata.get("name")
        version = metadata.get("version")
        description = metadata.get("description")
        return Template(
            name=name if isinstance(name, str) else "",
            version=int(version) if version in ("1", "2", "3") else 2,
            template_type=TemplateType.EQUIVALENCE,
            description=description if isinstance(description, str) else "",
            scenarios=(),
            document=document,
            equivalences=classes,
        )
    if resolved != document:
        again, _ = _validate(resolved, result.template_type, None, definitions, None)
        if not again.ok:
            raise TemplateInvalid(again)
        document = resolved
    kind, version = result.template_type or "standard", result.version or "1"
    try:
        return loader.build(document, kind, version, definitions, report)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a shape validation let through: a bug
        failed = Report(template=result.name)
        failed.crash(codes.UNUSABLE_VALUE, (), f"the template could not be loaded ({type(exc).__name__}: {exc})")
        outcome = _Outcome(result.template_type, result.name, result.version)
        raise TemplateInvalid(_result(failed, outcome, document)) from exc


def load(
    source: str | bytes | Mapping[str, Any],
    *,
    params: Mapping[str, Any] | None = None,
    definitions: Mapping[str, Mapping[str, Any]] | None = None,
    template_type: str | None = None,
    file_name: str | None = None,
) -> Template:
    """Validate, resolve the parameters and build the model; raises :class:`TemplateInvalid`.

    Nothing of an invalid template is returned: either the whole template
    loads, or the exception lists every problem.
    """
    result, report = _validate(source, template_type, params, definitions, file_name)
    if not result.ok:
        raise TemplateInvalid(result)
    return _load(result, report, params, definitions or {})


def parse_for_evaluator(
    document: Mapping[str, Any],
    params: Mapping[str, Any] | None,
    definitions: Mapping[str, Mapping[str, Any]],
    template_type: str | None = None,
) -> Template:
    """What the evaluator calls on a stored template (already resolved by ``add``).

    A template stored without ``metadata.type`` was added with an explicit
    type; when the caller does not pass it, a document with ``definitions``
    and no ``scenarios`` is a definition template, anything else standard.
    Raises :class:`TemplateInvalid` (a ``ValueError``) with a readable message.
    """
    if template_type is None:
        metadata = document.get("metadata")
        if not (isinstance(metadata, Mapping) and metadata.get("type")):
            definition = "definitions" in document and "scenarios" not in document
            template_type = "definition" if definition else "standard"
    return load(document, params=params, definitions=definitions, template_type=template_type)
