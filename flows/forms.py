"""Admin forms: every step config and condition is validated by the pure engine validator and
Meta's message builders, so bad config is a form error naming the field, never a 500 later."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet

from flows.engine import (
    StepType,
    find_cross_flow_cycle,
    normalize,
    validate_condition,
    validate_flow_structure,
    validate_step_config,
)
from flows.engine.text import unknown_placeholders
from flows.messages import check_message
from flows.models import Flow, Step, Transition
from flows.selectors import flow_data_list

CONFIG_HELP = (
    "JSON, by type (see docs/flows.md). "
    'send: {"type": "text", "body": "Hi {{ name }}"} or buttons/list/template; '
    'question: {"prompt": {...}, "expect": "text|number|email|phone|choice|regex|location", '
    '"save_as": "var", "max_retries": 2, "fallback": {"action": "end", "message": "..."}}; '
    'set_variable: {"set": {"var": "value"}}; action: {"action": "app.name", "save_as": "var"}; '
    'start_flow: {"flow": "name"}; handover/end: {"message": "..."}; condition: {}.'
)
CONDITION_HELP = (
    'Empty: always. {"op": "reply_id", "value": "x"}, {"op": "equals", "var": "context.v", '
    '"value": 1}, {"op": "regex", "var": "text", "pattern": "^\\\\d+$"}, {"op": "action_failed"}, '
    '{"all"|"any": [...]}, {"not": {...}}.'
)


class FlowForm(forms.ModelForm):
    class Meta:
        model = Flow
        fields = [
            "name",
            "description",
            "active",
            "is_default",
            "priority",
            "trigger_keywords",
            "idle_timeout_seconds",
            "timeout_message",
        ]

    def clean_trigger_keywords(self) -> str:
        raw = self.cleaned_data.get("trigger_keywords", "")
        keywords = [k.strip() for k in raw.split(",") if k.strip()]
        for keyword in keywords:
            if not normalize(keyword):
                raise ValidationError(f"keyword {keyword!r} is empty once normalised")
        return ", ".join(keywords)

    def clean_timeout_message(self) -> str:
        message = self.cleaned_data.get("timeout_message", "")
        unknown = unknown_placeholders(message)
        if unknown:
            raise ValidationError(
                f"unknown placeholder {{{{ {unknown[0]} }}}}; use name, profile_name, wa_id, "
                "contact.<field> or context.<variable>"
            )
        return message


class StepForm(forms.ModelForm):
    class Meta:
        model = Step
        fields = ["name", "step_type", "is_entry", "config", "position"]
        help_texts = {"config": CONFIG_HELP}
        widgets = {"config": forms.Textarea(attrs={"rows": 6, "cols": 90})}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        step_type = cleaned.get("step_type")
        if step_type is None or "config" not in cleaned:
            return cleaned  # the field errors are already shown
        config = cleaned["config"]
        if config is None:
            config = cleaned["config"] = {}
        errors = validate_step_config(step_type, config, check_message=check_message)
        if step_type == StepType.START_FLOW and isinstance(config, dict) and not errors:
            target = config.get("flow")
            if not Flow.objects.filter(name=target).exists():
                self.add_error("config", f"config.flow: no flow named {target!r}")
        if errors:
            self.add_error("config", ValidationError([str(error) for error in errors]))
        return cleaned


class TransitionForm(forms.ModelForm):
    class Meta:
        model = Transition
        fields = ["from_step", "to_step", "order", "condition"]
        help_texts = {"condition": CONDITION_HELP}
        widgets = {"condition": forms.Textarea(attrs={"rows": 2, "cols": 60})}

    def clean_condition(self) -> Any:
        condition = self.cleaned_data.get("condition") or {}
        errors = validate_condition(condition)
        if errors:
            raise ValidationError([f"{path}: {message}" for path, message in errors])
        return condition


class StepFormSet(BaseInlineFormSet):
    def live_forms(self) -> list[forms.Form]:
        return [
            form
            for form in self.forms
            if getattr(form, "cleaned_data", None) and not self._should_delete_form(form)
        ]

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        entries = [f for f in self.live_forms() if f.cleaned_data.get("is_entry")]
        if len(entries) != 1:
            raise ValidationError(
                f"A flow needs exactly one entry step; {len(entries)} are marked as entry."
            )


class TransitionFormSet(BaseInlineFormSet):
    """Transitions offer only this flow's steps; the whole graph is checked for loops."""

    step_formset: StepFormSet | None = None

    def _limit(self, form: forms.Form) -> forms.Form:
        steps = Step.objects.filter(flow=self.instance) if self.instance.pk else Step.objects.none()
        for name in ("from_step", "to_step"):
            form.fields[name].queryset = steps
        return form

    def _construct_form(self, i: int, **kwargs: Any) -> forms.Form:
        return self._limit(super()._construct_form(i, **kwargs))

    @property
    def empty_form(self) -> forms.Form:
        return self._limit(super().empty_form)

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        steps = self._final_steps()
        if steps is None:
            return
        by_pk = steps
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or self._should_delete_form(form):
                continue
            source, target = data.get("from_step"), data.get("to_step")
            if source is None or target is None:
                continue
            if source.pk in by_pk and target.pk in by_pk:
                by_pk[source.pk]["transitions"].append(
                    (
                        data.get("order") or 0,
                        {"to": by_pk[target.pk]["name"], "condition": data.get("condition") or {}},
                    )
                )
        flow = {
            "steps": [
                {
                    **step,
                    "transitions": [t for _, t in sorted(step["transitions"], key=lambda x: x[0])],
                }
                for step in by_pk.values()
            ]
        }
        errors = [
            str(error.message)
            for error in validate_flow_structure(flow)
            if error.code in ("loop", "no_default", "terminal")
        ]
        if not errors and self.instance.pk:
            # start_flow steps may chain this flow with others into a loop.
            this = {**flow, "name": self.instance.name}
            others = [f for f in flow_data_list() if f["name"] != self.instance.name]
            entry = next(
                (
                    f.cleaned_data["name"]
                    for f in (self.step_formset.live_forms() if self.step_formset else [])
                    if f.cleaned_data.get("is_entry")
                ),
                None,
            )
            for step in this["steps"]:
                step["entry"] = step["name"] == entry
            cycle = find_cross_flow_cycle([this, *others])
            if cycle:
                errors.append(
                    "loop of automatic steps across flows (nothing waits for the customer): "
                    + " -> ".join(cycle)
                )
        if errors:
            raise ValidationError(errors)

    def _final_steps(self) -> dict[int, dict[str, Any]] | None:
        """The flow's steps as they will be after this save (None if they are invalid)."""
        if self.step_formset is None:
            return (
                {
                    step.pk: {
                        "name": step.name,
                        "type": step.step_type,
                        "config": step.config,
                        "transitions": [],
                    }
                    for step in Step.objects.filter(flow=self.instance)
                }
                if self.instance.pk
                else {}
            )
        if not self.step_formset.is_valid():
            return None
        steps = {}
        for form in self.step_formset.live_forms():
            if form.instance.pk:  # new steps have no transitions yet (they are not selectable)
                steps[form.instance.pk] = {
                    "name": form.cleaned_data["name"],
                    "type": form.cleaned_data["step_type"],
                    "config": form.cleaned_data.get("config") or {},
                    "transitions": [],
                }
        return steps
