"""What validation finds, where, and what Vitrage would have answered.

A :class:`Report` collects problems *in the order Vitrage meets them*: the
validators run Vitrage's steps in Vitrage's order and keep going after an
error (where the rest of the template still makes sense), so the first
problem recorded is the one Vitrage's API returns, and the others are what a
user would hit after fixing it. Each problem therefore carries two texts:
``message`` for people (the Vitrage text and the details), and
``vitrage_message``/``vitrage_description``, exactly what Vitrage's
``template validate`` puts in ``message``/``description`` when this problem
is the first.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vitrail.evaluator.templates import codes
from vitrail.evaluator.templates.schema import Invalid

Path = tuple[str | int, ...]
_PLAIN_KEY = re.compile(r"[\w-]+")


def field_name(path: Path) -> str:
    """``("scenarios", 2, "actions", 0, "raise_alarm", "target")`` → ``scenarios[2].actions[0].raise_alarm.target``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """One problem (or warning) with a template, located as precisely as possible.

    ``code`` is Vitrage's status code (or one of Vitrail's, see :mod:`.codes`);
    ``scenario`` the index in ``scenarios``; ``field`` a path such as
    ``scenarios[2].actions[0].raise_alarm.target``; ``line`` the line in the
    YAML text, when the template was given as text.
    """

    code: int
    message: str
    template: str | None = None
    scenario: int | None = None
    field: str = ""
    line: int | None = None
    vitrage_description: str = codes.CUSTOM
    vitrage_message: str = ""

    @property
    def vitrage_rejects_request(self) -> bool:
        """Vitrage fails on this problem with an exception (its API answers HTTP 404)."""
        return self.code in codes.VITRAGE_CRASH_CODES

    def __str__(self) -> str:
        where = []
        if self.template:
            where.append(f"template {self.template!r}")
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(self.field)
        prefix = ", ".join(where)
        return f"{prefix}: [{self.code}] {self.message}" if prefix else f"[{self.code}] {self.message}"


@dataclass(slots=True)
class ValidationResult:
    """The outcome of validating one template.

    ``ok`` is False when there is at least one problem; ``problems`` holds
    every one found (Vitrage stops at the first), ``warnings`` what Vitrail
    thinks wrong in a template Vitrage accepts. ``status_code``,
    ``description`` and ``message`` are what Vitrage's validate API would
    answer (``status_code`` is ``""`` for an equivalence template, which
    Vitrage does not validate); ``vitrage_rejects_request``: Vitrage would
    fail with an exception (HTTP 404 ``Failed to validate template(s).``).
    ``document`` is the template as data (parsed from the text if need be).
    """

    ok: bool
    problems: list[TemplateProblem]
    warnings: list[TemplateProblem]
    status_code: int | str
    description: str
    message: str
    template_type: str | None
    name: str | None
    version: str | None
    vitrage_rejects_request: bool = False
    document: Any = None

    def summary(self) -> str:
        """Every problem on its own line (what an exception or a CLI shows)."""
        return "\n".join(str(problem) for problem in self.problems)


class TemplateInvalid(ValueError):
    """A template failed validation; ``result`` has every problem."""

    def __init__(self, result: ValidationResult) -> None:
        self.result = result
        name = f"template {result.name!r}" if result.name else "the template"
        super().__init__(f"{name} is invalid:\n{result.summary()}")


@dataclass(slots=True)
class Report:
    """Collects problems for one template (see the module docstring)."""

    lines: Mapping[Path, int] = field(default_factory=dict)
    template: str | None = None
    problems: list[TemplateProblem] = field(default_factory=list)
    warnings: list[TemplateProblem] = field(default_factory=list)
    prefix: Path = ()

    def located(self, path: Path) -> tuple[int | None, str, int | None]:
        """(scenario index, field, line) of a path relative to the document root."""
        full = (*self.prefix, *path)
        line = None
        for end in range(len(full), -1, -1):
            line = self.lines.get(full[:end])
            if line is not None:
                break
        scenario = full[1] if len(full) > 1 and full[0] == "scenarios" and isinstance(full[1], int) else None
        return scenario, field_name(full), line

    def add(
        self, code: int, path: Path, details: str = "", *, description: str, vitrage_message: str | None = None
    ) -> TemplateProblem:
        scenario, where, line = self.located(path)
        text = codes.message(code).rstrip()
        joint = " " if text.endswith(":") else " - "
        message = f"{text}{joint}{details}" if details else text
        problem = TemplateProblem(
            code,
            message,
            self.template,
            scenario,
            where,
            line,
            description,
            vitrage_message if vitrage_message is not None else message,
        )
        self.problems.append(problem)
        return problem

    # -- Vitrage's ways of composing a result --

    def syntax(self, error: Invalid, base: Path = ()) -> TemplateProblem:
        """A v1/v2 syntax error: Vitrage's text is the code's message glued to voluptuous' text."""
        code = error.code
        return self.add(
            code,
            (*base, *error.path),
            _plain(error),
            description=codes.SYNTAX,
            vitrage_message=codes.STATUS_MESSAGES[code] + str(error),
        )

    def syntax_code(self, code: int, path: Path, details: str = "") -> TemplateProblem:
        """A v1/v2 syntax error Vitrage builds by hand: just the code's message."""
        return self.add(code, path, details, description=codes.SYNTAX, vitrage_message=codes.STATUS_MESSAGES[code])

    def content(self, code: int, path: Path, details: str = "", extra: str | None = None) -> TemplateProblem:
        """A v1/v2 content error: the code's message, plus ``extra`` for the codes that add one (3, 86, 132)."""
        text = codes.STATUS_MESSAGES[code] + (extra or "")
        return self.add(code, path, details, description=codes.CONTENT, vitrage_message=text)

    def custom(self, code: int, path: Path, details: str, readable: str | None = None) -> TemplateProblem:
        """A v3 or parameter error: ``<message> - <details>``."""
        vitrage = f"{codes.STATUS_MESSAGES[code]} - {details}"
        return self.add(code, path, readable if readable is not None else details, description=codes.CUSTOM,
                        vitrage_message=vitrage)  # fmt: skip

    def voluptuous(self, error: Invalid, base: Path = (), readable: str | None = None) -> TemplateProblem:
        """A v3 syntax error: a custom result whose details are voluptuous' text."""
        if error.crash is not None:
            return self.crash(error.crash, (*base, *error.path), readable or _plain(error))
        code = error.code
        if code not in codes.STATUS_MESSAGES:  # Vitrage's KeyError: the only such message is 10000
            return self.crash(codes.V3_NO_ENTITIES, (*base, *error.path))
        return self.custom(code, (*base, *error.path), str(error), readable if readable is not None else _plain(error))

    def demote_last(self, count: int, why: str) -> None:
        """Turn the last ``count`` problems into warnings: Vitrage skips them (a quirk), so must Vitrail."""
        demoted = self.problems[len(self.problems) - count :]
        del self.problems[len(self.problems) - count :]
        for problem in demoted:
            message = f"{codes.message(codes.WARNING)} {problem.message} ({why})"
            self.warnings.append(dataclasses.replace(problem, code=codes.WARNING, message=message))

    def crash(self, code: int, path: Path, details: str = "") -> TemplateProblem:
        """Something Vitrage fails on with an exception (its API answers 404)."""
        return self.add(code, path, details, description=codes.CUSTOM, vitrage_message=codes.VITRAGE_CRASH_REPLY)

    def warn(self, path: Path, details: str) -> None:
        scenario, where, line = self.located(path)
        text = f"{codes.message(codes.WARNING)} {details}"
        self.warnings.append(TemplateProblem(codes.WARNING, text, self.template, scenario, where, line, "", ""))


def _plain(error: Invalid) -> str:
    """voluptuous' text for people: without the status code it carries as a message, and without the path."""
    if isinstance(error.msg, int):
        return ""
    return str(error.msg)
