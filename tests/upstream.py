"""Where the upstream samples are: ``../shared/fixtures`` next to the checkout.

They are real notifications, webhooks and events written by the upstream
projects, used as they are. A checkout elsewhere (a CI clone in /tmp) finds
them through ``SHARED_FIXTURES`` or the workspace's fixed place.
"""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def _find() -> Path:
    candidates = [
        Path(os.environ["SHARED_FIXTURES"]) if os.environ.get("SHARED_FIXTURES") else None,
        _ROOT.parent / "shared" / "fixtures",
        Path("/work/shared/fixtures"),
    ]
    for candidate in candidates:
        if candidate is not None and (candidate / "README.md").is_file():
            return candidate
    raise RuntimeError(
        "the upstream fixtures are missing: expected ../shared/fixtures next to the checkout "
        "(or set SHARED_FIXTURES to their directory)"
    )


FIXTURES = _find()
