"""The channel in the admin (staff only): contacts, messages, failed sends, numbers, raw events.

Tables here grow without bound, so lists never count the whole table, select their related
rows in the same query, and use raw-id widgets instead of loading every contact into a select.
Actions call services.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect

from meta_integration import services, templates
from meta_integration.models import (
    Contact,
    FailedOutboundMessage,
    InboundMessage,
    MessageTemplate,
    OutboundMessage,
    OutboundStatus,
    WebhookEvent,
    WhatsAppNumber,
)


def _is_changelist(request: HttpRequest) -> bool:
    match = request.resolver_match
    return bool(match and match.url_name and match.url_name.endswith("changelist"))


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = (
        "wa_id",
        "profile_name",
        "number",
        "last_inbound_at",
        "opted_in",
        "blocked",
        "needs_human",
    )
    list_filter = ("blocked", "needs_human", "opted_in")
    search_fields = ("=wa_id", "profile_name", "=user_id")
    list_select_related = ("number",)
    raw_id_fields = ("number",)
    readonly_fields = ("first_seen_at", "last_seen_at", "last_inbound_at")
    show_full_result_count = False
    actions = ("block", "unblock", "hand_over", "resolve")

    def _apply(
        self,
        request: HttpRequest,
        queryset: QuerySet[Contact],
        change: Callable[..., int],
        done: str,
    ) -> None:
        """Run one contact service on the selected ids and say how many it changed."""
        count = change(ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} contact(s) {done}.")

    @admin.action(description="Block selected contacts")
    def block(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        change = partial(services.contacts_set_blocked, blocked=True)
        self._apply(request, queryset, change, "blocked")

    @admin.action(description="Unblock selected contacts")
    def unblock(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        change = partial(services.contacts_set_blocked, blocked=False)
        self._apply(request, queryset, change, "unblocked")

    @admin.action(description="Hand over to a human (bot stays silent)")
    def hand_over(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        change = partial(services.contacts_set_needs_human, needs_human=True)
        self._apply(request, queryset, change, "handed over to a human")

    @admin.action(description="Resolve: give back to the bot")
    def resolve(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        change = partial(services.contacts_set_needs_human, needs_human=False)
        self._apply(request, queryset, change, "given back to the bot")


class ProcessedFilter(admin.SimpleListFilter):
    title = "processed"
    parameter_name = "processed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Processed"), ("no", "Waiting for the flow")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(processed_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(processed_at__isnull=True)
        return queryset


@admin.register(InboundMessage)
class InboundMessageAdmin(admin.ModelAdmin):
    list_display = ("id", "contact", "message_type", "short_text", "sent_at", "processed_at")
    list_filter = ("message_type", ProcessedFilter)
    search_fields = ("=wamid", "=contact__wa_id")
    list_select_related = ("contact",)
    raw_id_fields = ("contact", "number")
    readonly_fields = ("received_at",)
    show_full_result_count = False
    ordering = ("-id",)

    @admin.display(description="text")
    def short_text(self, obj: InboundMessage) -> str:
        return obj.text[:60]

    def get_queryset(self, request: HttpRequest) -> QuerySet[InboundMessage]:
        queryset = super().get_queryset(request)
        # The raw payload is only needed on the change page.
        return queryset.defer("payload") if _is_changelist(request) else queryset


@admin.action(description="Replay: send again (one new attempt each)")
def replay_failed(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    ids = list(queryset.filter(status=OutboundStatus.FAILED).values_list("pk", flat=True))
    result = services.outbound_replay(ids)
    level = messages.SUCCESS if result else messages.WARNING
    modeladmin.message_user(request, f"{int(result)} failed send(s) re-queued.", level)
    if result.refused:
        refused = ", ".join(str(pk) for pk in result.refused)
        modeladmin.message_user(
            request,
            f"{len(result.refused)} refused: Meta already acknowledged them ({refused}).",
            messages.WARNING,
        )


class OutboundMessageAdminBase(admin.ModelAdmin):
    list_display = (
        "id",
        "contact",
        "message_type",
        "status",
        "attempts",
        "possible_duplicate",
        "error_code",
        "short_text",
        "queued_at",
        "sent_at",
    )
    list_filter = ("status", "message_type", "possible_duplicate", "priority")
    search_fields = ("=wamid", "=idempotency_key", "=contact__wa_id")
    list_select_related = ("contact",)
    raw_id_fields = ("contact", "number", "in_reply_to")
    readonly_fields = (
        "wamid",
        "attempts",
        "queued_at",
        "next_attempt_at",
        "sending_at",
        "sent_at",
        "delivered_at",
        "read_at",
        "failed_at",
    )
    show_full_result_count = False
    ordering = ("-id",)
    actions = (replay_failed,)

    @admin.display(description="text")
    def short_text(self, obj: OutboundMessage) -> str:
        return obj.text[:60]


@admin.register(OutboundMessage)
class OutboundMessageAdmin(OutboundMessageAdminBase):
    pass


@admin.register(FailedOutboundMessage)
class FailedOutboundMessageAdmin(OutboundMessageAdminBase):
    """The failed-sends list: what an operator replays after fixing the cause."""

    list_display = (
        "id",
        "contact",
        "message_type",
        "error_code",
        "error_details",
        "attempts",
        "failed_at",
    )
    list_filter = ("error_code", "message_type")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboundMessage]:
        return super().get_queryset(request).filter(status=OutboundStatus.FAILED)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class WhatsAppNumberForm(forms.ModelForm):
    """The access token is write-only: never rendered back; left blank it keeps its value."""

    access_token_override = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave blank to keep the stored token (or to use META_ACCESS_TOKEN if none).",
    )
    clear_access_token = forms.BooleanField(
        required=False, help_text="Remove the stored token and use META_ACCESS_TOKEN."
    )

    class Meta:
        model = WhatsAppNumber
        fields = (
            "phone_number_id",
            "waba_id",
            "display_phone_number",
            "api_version",
            "active",
            "access_token_override",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Belt and braces: nothing of the stored token in the form's initial data either.
        self.initial.pop("access_token_override", None)

    def clean_access_token_override(self) -> str:
        value = self.cleaned_data.get("access_token_override") or ""
        # The instance still holds the stored value here (the form writes it back later).
        return value or self.instance.access_token_override

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("clear_access_token"):
            cleaned["access_token_override"] = ""
        return cleaned


@admin.register(WhatsAppNumber)
class WhatsAppNumberAdmin(admin.ModelAdmin):
    form = WhatsAppNumberForm
    list_display = (
        "phone_number_id",
        "display_phone_number",
        "waba_id",
        "api_version",
        "active",
        "has_token_override",
    )
    list_filter = ("active",)
    search_fields = ("=phone_number_id", "display_phone_number")
    fields = (
        "phone_number_id",
        "waba_id",
        "display_phone_number",
        "api_version",
        "active",
        "access_token_override",
        "clear_access_token",
    )

    @admin.display(boolean=True, description="own token")
    def has_token_override(self, obj: WhatsAppNumber) -> bool:
        return bool(obj.access_token_override)


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """Raw events as Meta sent them: evidence, so read-only."""

    list_display = ("id", "received_at", "messages_count", "statuses_count")
    readonly_fields = ("body", "received_at", "messages_count", "statuses_count")
    search_fields = ("=id",)
    show_full_result_count = False
    ordering = ("-id",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEvent]:
        queryset = super().get_queryset(request)
        return queryset.defer("body") if _is_changelist(request) else queryset

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- message templates (issue 13) ---------------------------------------------------------------


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    """The template catalogue as Meta reports it (sync + webhooks): read-only here; templates
    are created and edited in Meta's WhatsApp Manager. "Sync from Meta now" refreshes it."""

    change_list_template = "admin/meta_integration/messagetemplate/change_list.html"
    list_display = (
        "name",
        "language",
        "status",
        "category",
        "body_parameter_count",
        "waba_id",
        "rejected_reason",
        "synced_at",
    )
    list_filter = ("status", "category", "language", "waba_id")
    search_fields = ("name", "=template_id")
    readonly_fields = (
        "waba_id",
        "template_id",
        "name",
        "language",
        "category",
        "status",
        "body_parameter_count",
        "components",
        "rejected_reason",
        "synced_at",
    )
    ordering = ("name", "language")
    actions = ("sync_selected",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        from django.urls import path

        view = self.admin_site.admin_view(self.sync_view)
        return [
            path("sync/", view, name="meta_integration_messagetemplate_sync"),
            *super().get_urls(),
        ]

    def _sync(self, request: HttpRequest, waba_ids: list[str]) -> None:
        for waba_id in waba_ids:
            try:
                result = templates.templates_sync(number_or_waba=waba_id)
            except templates.TemplateSyncError as exc:
                self.message_user(request, f"WABA {waba_id}: sync failed: {exc}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"WABA {waba_id}: {result['templates']} template(s) from Meta, "
                f"{result['created']} new, {result['deleted']} gone.",
            )
        if not waba_ids:
            self.message_user(request, "No WABA to sync: set META_WABA_ID.", messages.WARNING)

    @admin.action(
        description="Sync from Meta now (the selected templates' WABAs)", permissions=["view"]
    )
    def sync_selected(self, request: HttpRequest, queryset: QuerySet[MessageTemplate]) -> None:
        self._sync(request, sorted(set(queryset.values_list("waba_id", flat=True))))

    def sync_view(self, request: HttpRequest) -> HttpResponse:
        """POST: sync every WABA we send from (works on an empty catalogue too)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        from meta_integration.template_tasks import waba_ids_to_sync

        self._sync(request, waba_ids_to_sync())
        return redirect("admin:meta_integration_messagetemplate_changelist")
