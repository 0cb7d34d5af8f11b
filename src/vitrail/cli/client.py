"""The CLI's HTTP client for the Vitrail API, with errors a person can act on."""

from __future__ import annotations

from typing import Any

import httpx


class ApiCallError(RuntimeError):
    """The API could not be reached or answered with an error; the message says which."""


class ApiClient:
    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers={"Accept": "application/json"})

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.ConnectError:
            raise ApiCallError(
                f"cannot reach Vitrail at {self.base_url} (connection refused). "
                "Is `vitrail serve` running? Set the address with --url or VITRAIL_API__URL."
            ) from None
        except httpx.TimeoutException:
            raise ApiCallError(
                f"Vitrail at {self.base_url} did not answer within {self._http.timeout.read} s"
            ) from None
        except httpx.HTTPError as exc:
            raise ApiCallError(f"request to {self.base_url}{path} failed: {exc}") from None
        if response.status_code >= 400:
            try:
                description = response.json().get("description") or response.reason_phrase
            except ValueError:
                description = response.text[:200] or response.reason_phrase
            raise ApiCallError(f"{description} (HTTP {response.status_code})")
        try:
            return response.json()
        except ValueError:
            raise ApiCallError(f"{path} answered something that is not JSON (HTTP {response.status_code})") from None
