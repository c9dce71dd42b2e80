"""The sandbox's template endpoints, mixed into GraphSandbox: `GET /{waba-id}/message_templates`
(paged like Meta), the check of a template send against the catalogue, and the controls that
add or change a template and tell our webhook about it (signed, as Meta does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from meta_integration.sandbox.callbacks import CallbackJob
from meta_integration.sandbox.errors import error_body
from meta_integration.sandbox.templates import check_template_send, template_status_event
from meta_integration.sandbox.validation import Refusal

if TYPE_CHECKING:
    from meta_integration.sandbox.app import GraphSandbox


class TemplateEndpoints:
    """Methods of GraphSandbox (config, catalogue, callbacks, counters are its attributes)."""

    def waba_of(self: GraphSandbox, phone_number_id: str) -> str:
        return self.config.phone_wabas.get(phone_number_id) or self.config.waba_id

    def _check_template(self: GraphSandbox, phone_number_id: str, template: dict[str, Any]) -> None:
        if self.config.templates is not None or not self.config.enforce_templates:
            return  # the legacy name -> count table (validate_send) or no checks at all
        known = self.catalogue.find(
            self.waba_of(phone_number_id), template["name"], template["language"]["code"]
        )
        check_template_send(template, known)

    def message_templates(
        self: GraphSandbox, waba_id: str, environ: dict[str, Any], path: str
    ) -> tuple[int, Any]:
        """GET /{waba-id}/message_templates: one page, only the requested fields."""
        with self._lock:
            self.counters["requests"] += 1
        if not self._authorized(environ):
            return self._refuse(*error_body(190, "Invalid OAuth 2.0 Access Token"))
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            limit = int(query.get("limit", ["25"])[0])
        except ValueError:
            return self._refuse(*error_body(100, "Invalid parameter: limit"))
        wanted = [f for f in query.get("fields", [""])[0].split(",") if f]
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "localhost")
        # Meta's paging.next is an absolute URL that repeats the query (fields, limit).
        base = f"{environ.get('wsgi.url_scheme', 'http')}://{host}{path}"
        if wanted:
            base += "?" + urlencode({"fields": ",".join(wanted)})
        try:
            page = self.catalogue.page(
                waba_id, limit=limit, after=query.get("after", [""])[0], url=base
            )
        except Refusal as refusal:
            return self._refuse(*error_body(refusal.code, refusal.details))
        if wanted:
            page["data"] = [{k: t[k] for k in ("id", *wanted) if k in t} for t in page["data"]]
        return 200, page

    def set_template(
        self: GraphSandbox,
        values: dict[str, Any],
        *,
        waba_id: str = "",
        webhook: bool = False,
        event: str = "",
        reason: str = "NONE",
    ) -> dict[str, Any]:
        """Add or change a catalogue template; with `webhook`, tell our webhook (signed)."""
        waba_id = waba_id or self.config.waba_id
        config = self.config
        if webhook and (not config.webhook_url or not config.app_secret):
            raise ValueError("a template webhook needs webhook_url and app_secret")
        entry = self.catalogue.upsert(waba_id, values)
        if webhook:
            self.callbacks.submit(
                CallbackJob(
                    url=config.webhook_url,
                    secret=config.app_secret,
                    delay=0.0,
                    events=[
                        template_status_event(
                            waba_id=waba_id,
                            template=entry,
                            event=(event or entry["status"]).upper(),
                            reason=reason,
                        )
                    ],
                )
            )
        return entry

    def template_controls(
        self: GraphSandbox, method: str, query: dict[str, list[str]], data: dict[str, Any]
    ) -> tuple[int, Any]:
        """GET: a WABA's catalogue; POST: add/change one (and maybe webhook); DELETE: reseed."""
        if method == "GET":
            waba_id = query.get("waba_id", [""])[0] or self.config.waba_id
            return 200, {"waba_id": waba_id, "templates": self.catalogue.all(waba_id)}
        if method == "POST":
            options = {k: data.pop(k) for k in ("waba_id", "event", "reason") if k in data}
            webhook = bool(data.pop("webhook", False))
            return 200, self.set_template(data, webhook=webhook, **options)
        if method == "DELETE":
            self.catalogue.reset()
            return 200, {"ok": True}
        return 404, {"error": f"no control {method} templates"}
