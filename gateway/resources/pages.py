"""HTML page plumbing for the customer pages: one autoescaped Jinja environment, page headers, the one stylesheet.

Pages load nothing from third parties (checklist row 15), run no script and no inline style, so the Content-Security-
Policy needs no ``'unsafe-inline'``; ``frame-ancestors 'none'`` (with the middleware's ``X-Frame-Options: DENY``)
forbids framing (row 13, RFC 6749 §10.13 clickjacking). ``form-action`` is ``'self'`` — plus, on the consent page,
the origin of the client's redirect URI, because Chrome applies ``form-action`` to the redirect that follows a form
POST.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from importlib import resources
from typing import Any, ClassVar
from urllib.parse import urlsplit

import falcon
from jinja2 import Environment, PackageLoader, StrictUndefined

__all__ = ["PageRenderer", "StaticResource", "origin_of"]


def _datetime(value: dt.datetime | None, fmt: str = "%d %b %Y %H:%M UTC") -> str:
    return "—" if value is None else value.astimezone(dt.UTC).strftime(fmt)


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL, or ``None``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in parts.netloc for c in " ;,'\""):
        return None
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


class PageRenderer:
    """Render templates from ``gateway/templates`` (autoescape always on) with the page's security headers."""

    def __init__(self, *, site_name: str = "Green Button Gateway") -> None:
        self._env = Environment(
            loader=PackageLoader("gateway", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["datetime"] = _datetime
        self._env.globals["site_name"] = site_name

    def render(
        self,
        resp: falcon.Response,
        template: str,
        *,
        status: str = falcon.HTTP_200,
        form_action: Iterable[str] = (),
        **context: Any,
    ) -> None:
        """Write ``template`` rendered with ``context`` as the response, with the page CSP."""
        context.setdefault("customer", None)
        context.setdefault("csrf_token", "")
        resp.status = status
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self._env.get_template(template).render(**context)
        self.headers(resp, form_action=form_action)

    @staticmethod
    def headers(resp: falcon.Response, *, form_action: Iterable[str] = ()) -> None:
        """The page CSP (no inline script or style, nothing third-party, no framing)."""
        sources = " ".join(["'self'", *form_action])
        resp.set_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self'; "
            f"form-action {sources}; frame-ancestors 'none'; base-uri 'none'",
        )
        resp.set_header("Cache-Control", "no-store")

    def error(self, resp: falcon.Response, status: str, title: str, message: str, **context: Any) -> None:
        """An HTML error page (the customer's pages never answer JSON)."""
        self.render(resp, "error.html", status=status, title=title, message=message, **context)


class StaticResource:
    """``GET /static/{name}``: the self-hosted stylesheet (no CDN, no third party; row 15)."""

    _TYPES: ClassVar[dict[str, str]] = {".css": "text/css; charset=utf-8"}

    def __init__(self) -> None:
        self._files: dict[str, tuple[bytes, str]] = {}
        folder = resources.files("gateway") / "static"
        for entry in folder.iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
            if entry.is_file() and suffix in self._TYPES:
                self._files[entry.name] = (entry.read_bytes(), self._TYPES[suffix])

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        found = self._files.get(name)
        if found is None:
            raise falcon.HTTPNotFound()
        resp.data, resp.content_type = found
        resp.set_header("Cache-Control", "public, max-age=3600")
        resp.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
