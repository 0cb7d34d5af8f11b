"""Hiding the password of a URL, for logs, error messages and ``config show``.

One implementation for every kind of URL Vitrail holds (database, RabbitMQ,
OpenStack's RabbitMQ): it works on the text, so it also masks URLs that no
parser accepts (a malformed URL in an error message is exactly where it matters).
"""

from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"^(?P<user>[^:/@?#]*):(?P<password>.*)@")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``; a URL without one is returned as it is."""
    scheme, separator, rest = url.partition("://")
    if not separator or not _SCHEME.match(scheme):
        scheme, separator, rest = "", "", url
    return scheme + separator + _CREDENTIALS.sub(r"\g<user>:***@", rest, count=1)
