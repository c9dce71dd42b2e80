"""Admin: flows with their steps and transitions inline; conversation sessions with time left,
"expire now" and "resolve handover". Saves bump the definitions cache version (signals)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from flows import services
from flows.agent import admin as agent_admin  # noqa: F401 - registers the agent's view
from flows.forms import FlowForm, StepForm, StepFormSet, TransitionForm, TransitionFormSet
from flows.models import ConversationSession, Flow, SessionStatus, Step, Transition


class StepInline(admin.StackedInline):
    model = Step
    form = StepForm
    formset = StepFormSet
    extra = 0
    ordering = ["position", "id"]


class TransitionInline(admin.TabularInline):
    model = Transition
    form = TransitionForm
    formset = TransitionFormSet
    fk_name = "flow"
    extra = 0
    ordering = ["from_step__position", "from_step_id", "order", "id"]
    verbose_name_plural = "transitions (save new steps first to link them)"


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    form = FlowForm
    inlines = [StepInline, TransitionInline]
    list_display = [
        "name",
        "active",
        "is_default",
        "priority",
        "trigger_keywords",
        "step_count",
        "updated_at",
    ]
    list_filter = ["active", "is_default"]
    search_fields = ["name", "trigger_keywords", "description"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Flow]:
        return super().get_queryset(request).annotate(_step_count=Count("steps"))

    @admin.display(description="steps", ordering="_step_count")
    def step_count(self, obj: Flow) -> int:
        return obj._step_count

    def _create_formsets(self, request: HttpRequest, obj: Any, change: bool) -> Any:
        # The transitions formset checks the whole graph (loops of automatic steps, defaults
        # of condition steps) as it will be after this save, so it needs the steps formset.
        formsets, inlines = super()._create_formsets(request, obj, change)
        step_formset = next((f for f in formsets if isinstance(f, StepFormSet)), None)
        for formset in formsets:
            if isinstance(formset, TransitionFormSet):
                formset.step_formset = step_formset
        return formsets, inlines


def _format_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 60}m {seconds % 60:02d}s"


@admin.register(ConversationSession)
class ConversationSessionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "contact",
        "flow",
        "current_step",
        "status",
        "time_left",
        "last_activity_at",
        "started_at",
        "ended_reason",
    ]
    list_filter = ["status", "flow"]
    search_fields = ["contact__wa_id", "contact__profile_name"]
    list_select_related = ["contact", "flow", "current_step"]
    raw_id_fields = ["contact", "flow", "current_step"]
    show_full_result_count = False
    ordering = ["-id"]
    readonly_fields = [
        "contact",
        "flow",
        "current_step",
        "status",
        "context",
        "attempts",
        "started_at",
        "last_activity_at",
        "expires_at",
        "time_left",
        "ended_at",
        "ended_reason",
    ]
    actions = ["expire_now", "resolve_handover"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="time left")
    def time_left(self, obj: ConversationSession) -> str:
        if obj.status != SessionStatus.ACTIVE or obj.expires_at is None:
            return "-"
        remaining = (obj.expires_at - timezone.now()).total_seconds()
        return _format_duration(remaining) if remaining > 0 else "due (next sweep)"

    @admin.action(description="Expire now (sends the timeout message)")
    def expire_now(self, request: HttpRequest, queryset: QuerySet[ConversationSession]) -> None:
        expired = 0
        for session in queryset.filter(status=SessionStatus.ACTIVE):
            if services.session_expire(
                session_id=session.pk, reason="expired by operator", only_if_due=False
            ):
                expired += 1
                self.log_change(request, session, "Expired by operator.")
        self.message_user(request, f"{expired} session(s) expired.", messages.SUCCESS)

    @admin.action(description="Resolve handover (the bot answers again)")
    def resolve_handover(
        self, request: HttpRequest, queryset: QuerySet[ConversationSession]
    ) -> None:
        sessions = {
            session.contact_id: session
            for session in queryset.filter(status=SessionStatus.HANDED_OVER, ended_at__isnull=True)
        }
        contact_ids = set(sessions)
        for contact_id, session in sessions.items():
            services.handover_resolve(
                contact_id=contact_id, resolved_by=request.user.get_username()
            )
            self.log_change(request, session, "Hand-over resolved: the bot answers again.")
        self.message_user(request, f"{len(contact_ids)} handover(s) resolved.", messages.SUCCESS)
