"""Forms of the agent's view. Each validates fully before anything changes."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from meta_integration.messages import TEXT_BODY_MAX
from meta_integration.models import MessageTemplate, TemplateStatus

MAX_TEMPLATE_PARAMS = 10


def new_token() -> str:
    """One per rendered reply form: a double submit of the same form sends once."""
    return uuid.uuid4().hex


class ReplyForm(forms.Form):
    """Free text inside the customer's 24-hour window; an approved template outside it."""

    token = forms.CharField(widget=forms.HiddenInput, max_length=64)
    text = forms.CharField(
        required=False,
        max_length=TEXT_BODY_MAX,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
    )
    template = forms.ModelChoiceField(
        queryset=MessageTemplate.objects.none(),
        required=False,
        empty_label="(choose an approved template)",
    )

    def __init__(self, *args: Any, window_open: bool, waba_id: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.window_open = window_open
        templates = MessageTemplate.objects.filter(status=TemplateStatus.APPROVED)
        if waba_id:
            templates = templates.filter(waba_id=waba_id)
        self.fields["template"].queryset = templates.order_by("name", "language")
        self.fields["template"].label_from_instance = lambda t: (
            f"{t.name} ({t.language}) - {t.body_parameter_count} parameter(s)"
        )
        for index in range(1, MAX_TEMPLATE_PARAMS + 1):
            self.fields[f"param_{index}"] = forms.CharField(
                required=False, max_length=1024, label=f"{{{{{index}}}}}"
            )
        if window_open:
            self.fields["text"].help_text = "The customer's 24-hour window is open."
        else:
            self.fields["text"].widget = forms.HiddenInput()
            self.fields["template"].help_text = (
                "The customer's 24-hour window is closed: only an approved template can go. "
                "Fill in exactly the template's parameters, in order."
            )

    def param_fields(self) -> list[forms.BoundField]:
        return [self[f"param_{i}"] for i in range(1, MAX_TEMPLATE_PARAMS + 1)]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        text = (data.get("text") or "").strip()
        template = data.get("template")
        params = [(data.get(f"param_{i}") or "").strip() for i in range(1, MAX_TEMPLATE_PARAMS + 1)]
        if text and template:
            raise forms.ValidationError("Write a message or choose a template, not both.")
        if text and not self.window_open:
            raise forms.ValidationError(
                "The customer's 24-hour window is closed: choose an approved template."
            )
        if not text and template is None:
            raise forms.ValidationError(
                "Write a message." if self.window_open else "Choose an approved template."
            )
        if template is not None:
            count = template.body_parameter_count
            given = params[:count]
            if not all(given) or any(params[count:]):
                raise forms.ValidationError(
                    f"Template {template.name} takes exactly {count} parameter(s): "
                    f"fill {{{{1}}}} to {{{{{count}}}}} and nothing else."
                    if count
                    else f"Template {template.name} takes no parameters."
                )
            data["params"] = given
        data["text"] = text
        return data


class AssignForm(forms.Form):
    assigned_to = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(),
        required=False,
        empty_label="(nobody)",
        label="Assign to",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assigned_to"].queryset = (
            get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")
        )


class HandoverForm(forms.Form):
    reason = forms.CharField(required=False, max_length=200)
