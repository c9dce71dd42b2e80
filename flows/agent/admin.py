"""Admin pages of the agent's view (staff only, like the whole admin).

- Conversations: the waiting list (handed over, oldest first, flagged ones marked), search over
  names and message text, and per contact a page with the thread, a reply box, assign, hand
  over and hand back. Every operator action goes through flows.services and is recorded in the
  admin log (LogEntry) with who did it.
- Parked inbound messages: messages that failed FLOWS_MAX_PROCESSING_ATTEMPTS times, with their
  error and a replay action.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from flows import services
from flows.agent.forms import AssignForm, HandoverForm, ReplyForm, new_token
from flows.agent.selectors import contact_thread, contacts_matching
from flows.models import ContactState, Conversation, ParkedInboundMessage
from flows.services.state import reply_number, window_open


class WaitingFilter(admin.SimpleListFilter):
    """The waiting list by default: what a human has to answer."""

    title = "conversations"
    parameter_name = "show"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("waiting", "waiting for a human"),
            ("flagged", "flagged: unanswered too long"),
            ("mine", "assigned to me"),
            ("all", "all conversations"),
        ]

    def value(self) -> str:
        return super().value() or "waiting"

    def choices(self, changelist: Any) -> Any:
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "all":
            return queryset
        if value == "mine":
            return queryset.filter(flow_state__assigned_to=request.user)
        queryset = queryset.filter(needs_human=True)
        if value == "flagged":
            queryset = queryset.filter(flow_state__flagged_at__isnull=False)
        return queryset


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = [
        "contact_name",
        "wa_id",
        "waiting_since",
        "flagged",
        "assigned",
        "last_inbound_at",
    ]
    list_filter = [WaitingFilter]
    search_fields = ["wa_id", "profile_name"]
    search_help_text = "Name, WhatsApp id, or any text the customer or we sent."
    show_full_result_count = False
    list_per_page = 50
    # Oldest hand-over first; conversations not handed over after them, latest message first.
    ordering = [F("flow_state__handed_over_at").asc(nulls_last=True), "-last_inbound_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .select_related("flow_state__assigned_to")
            .annotate(_handed_over_at=F("flow_state__handed_over_at"))
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        return contacts_matching(queryset, search_term), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @staticmethod
    def _state(obj: Conversation) -> ContactState | None:
        try:
            return obj.flow_state
        except ContactState.DoesNotExist:
            return None

    @admin.display(description="contact", ordering="profile_name")
    def contact_name(self, obj: Conversation) -> str:
        return obj.profile_name or obj.wa_id

    @admin.display(description="waiting since", ordering="_handed_over_at")
    def waiting_since(self, obj: Conversation) -> str:
        state = self._state(obj)
        if not obj.needs_human:
            return "-"
        if state is None or state.handed_over_at is None:
            return "handed over"
        return f"{state.handed_over_at:%Y-%m-%d %H:%M} ({_ago(state.handed_over_at)})"

    @admin.display(description="flagged")
    def flagged(self, obj: Conversation) -> str:
        state = self._state(obj)
        if state is not None and state.flagged_at is not None:
            return format_html('<strong style="color:#c62828">{}</strong>', "UNANSWERED")
        return ""

    @admin.display(description="assigned to")
    def assigned(self, obj: Conversation) -> str:
        state = self._state(obj)
        return state.assigned_to.get_username() if state and state.assigned_to else ""

    # --- the conversation page -------------------------------------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        contact = self.get_object(request, object_id)
        if contact is None:
            raise Http404("no such conversation")
        if not self.has_view_or_change_permission(request, contact):
            raise PermissionDenied
        number = reply_number(contact)
        is_open = window_open(contact=contact, number=number, now=timezone.now())
        waba_id = number.waba_id if number is not None else ""
        forms: dict[str, Any] = {
            "reply": ReplyForm(
                initial={"token": new_token()}, window_open=is_open, waba_id=waba_id
            ),
            "assign": AssignForm(initial={"assigned_to": self._assigned_id(contact)}),
            "handover": HandoverForm(),
        }
        if request.method == "POST":
            if not self.has_change_permission(request, contact):
                raise PermissionDenied
            response = self._post(request, contact, forms, is_open=is_open, waba_id=waba_id)
            if response is not None:
                return response
        state = self._state(contact)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Conversation with {contact}",
            "opts": self.opts,
            "original": contact,
            "contact": contact,
            "state": state,
            "number": number,
            "window_open": is_open,
            "thread": contact_thread(contact.pk),
            "forms": forms,
            "can_change": self.has_change_permission(request, contact),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "agent/conversation.html", context)

    def _assigned_id(self, contact: Conversation) -> int | None:
        state = self._state(contact)
        return state.assigned_to_id if state else None

    def _post(
        self,
        request: HttpRequest,
        contact: Conversation,
        forms: dict[str, Any],
        *,
        is_open: bool,
        waba_id: str,
    ) -> HttpResponse | None:
        """Run one operator action; None (the page again, with errors) when it was refused."""
        op = request.POST.get("op", "")
        who = request.user.get_username()
        try:
            if op == "reply":
                form = forms["reply"] = ReplyForm(
                    request.POST, window_open=is_open, waba_id=waba_id
                )
                if not form.is_valid():
                    return None
                data = form.cleaned_data
                template = data.get("template")
                outbound, created = services.agent_reply_send(
                    contact_id=contact.pk,
                    token=data["token"],
                    text=data["text"],
                    template_id=template.pk if template else None,
                    params=data.get("params") or (),
                )
                if not created:
                    self.message_user(request, "That reply was already sent.", messages.INFO)
                    return self._again(request)
                what = f"template {template.name}" if template else "text"
                self.log_change(request, contact, f"Replied ({what}), outbound {outbound.pk}.")
                self.message_user(request, "Reply queued.", messages.SUCCESS)
            elif op == "assign":
                form = forms["assign"] = AssignForm(request.POST)
                if not form.is_valid():
                    return None
                user = form.cleaned_data["assigned_to"]
                services.handover_assign(contact_id=contact.pk, user_id=user.pk if user else None)
                target = user.get_username() if user else "nobody"
                self.log_change(request, contact, f"Assigned to {target}.")
                self.message_user(request, f"Assigned to {target}.", messages.SUCCESS)
            elif op == "handover":
                form = forms["handover"] = HandoverForm(request.POST)
                if not form.is_valid():
                    return None
                reason = form.cleaned_data["reason"] or f"taken over by {who}"
                services.handover_start(contact_id=contact.pk, reason=reason)
                self.log_change(request, contact, f"Handed over: {reason}.")
                self.message_user(request, "Handed over: the bot is silent.", messages.SUCCESS)
            elif op == "handback":
                if not contact.needs_human:
                    self.message_user(
                        request, "This conversation is not handed over.", messages.ERROR
                    )
                    return None
                services.handover_resolve(contact_id=contact.pk, resolved_by=who)
                self.log_change(request, contact, "Handed back to the bot.")
                self.message_user(
                    request, "Handed back: the next message runs the flows.", messages.SUCCESS
                )
            else:
                self.message_user(request, f"Unknown action {op!r}.", messages.ERROR)
                return None
        except services.HandoverError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        return self._again(request)

    @staticmethod
    def _again(request: HttpRequest) -> HttpResponse:
        # Post/redirect/get: a reload never re-submits the action.
        return HttpResponseRedirect(request.get_full_path())


def _ago(when: Any) -> str:
    seconds = int((timezone.now() - when).total_seconds())
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m ago"
    return f"{seconds // 60}m {seconds % 60:02d}s ago"


@admin.register(ParkedInboundMessage)
class ParkedInboundMessageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "contact",
        "message_type",
        "short_text",
        "processing_attempts",
        "short_error",
        "parked_at",
    ]
    list_select_related = ["contact"]
    search_fields = ["wamid", "contact__wa_id", "text", "processing_error"]
    show_full_result_count = False
    ordering = ["-parked_at"]
    readonly_fields = [
        "wamid",
        "contact",
        "number",
        "message_type",
        "text",
        "payload",
        "sent_at",
        "received_at",
        "processing_attempts",
        "processing_error",
        "parked_at",
    ]
    fields = readonly_fields
    actions = ["replay"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(parked_at__isnull=False)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="text")
    def short_text(self, obj: ParkedInboundMessage) -> str:
        return obj.text[:60]

    @admin.display(description="error")
    def short_error(self, obj: ParkedInboundMessage) -> str:
        return obj.processing_error[:120]

    @admin.action(description="Replay (run the flows on them again)", permissions=["change"])
    def replay(self, request: HttpRequest, queryset: QuerySet[ParkedInboundMessage]) -> None:
        rows = list(queryset)
        replayed = services.inbound_replay([row.pk for row in rows])
        for row in rows:
            self.log_change(request, row, "Replayed.")
        self.message_user(request, f"{replayed} message(s) replayed.", messages.SUCCESS)
