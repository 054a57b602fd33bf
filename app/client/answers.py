"""Reading the server's HTTP answers: a refusal becomes the client's typed error, said in words."""

from __future__ import annotations

import httpx

from app.client.errors import server_error


def raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        code, message = str(body["code"]), str(body["error"])
    except (ValueError, KeyError, TypeError):
        if response.status_code == 404:  # not the service: some other page, or a wrong prefix
            code, message = "internal", not_the_service(str(response.request.url))
        else:
            code, message = "internal", f"HTTP {response.status_code}: {response.text[:200]}"
    retry = seconds(response.headers.get("Retry-After"))
    raise server_error(code, message, status=response.status_code, retry_after=retry)


def seconds(retry_after: str | None) -> float | None:
    """A Retry-After header given in seconds (the only form this server sends), else None."""
    return float(retry_after) if retry_after and retry_after.strip().isdigit() else None


def not_the_service(url: str) -> str:
    """The words for a 404 that is not the service's own (no JSON error in it)."""
    return (
        f"nothing at {url} speaks the run protocol (HTTP 404): "
        "pass the server's base URL, the address its editor's /ui is under (e.g. http://host:5000)"
    )
