"""Which emails a tenant's customers are sent, per mode (PLATFORMA's `notifications.configure`):
their invoice when it is generated, a receipt when a payment is received, a notice when an
invoice is overdue, and one when usage reaches a threshold. All on by default; a column each of
the mode's TenantSettings. Only customer emails follow them: webhooks follow each endpoint's
subscription, and finance's emails the finance address."""
from __future__ import annotations

from typing import Any, Mapping

from ..auth import Principal
from ..db import db
from .models import TenantSettings
from .service import get_tenant

#: The notifications a tenant configures, each a TenantSettings column `notify_<kind>`.
KINDS = ("invoice_generated", "payment_received", "payment_overdue", "usage_threshold")


def customer_emails_enabled(tenant_id: str, livemode: bool, kind: str) -> bool:
    """Whether the tenant's customers are emailed about `kind` (one of KINDS) in this mode; a
    tenant without settings in the mode (none such) sends nothing."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification {kind!r}: one of {', '.join(KINDS)}")
    settings = db.session.get(TenantSettings, (tenant_id, livemode))
    return bool(settings is not None and getattr(settings, f"notify_{kind}"))


def enabled_kinds(settings: TenantSettings) -> frozenset[str]:
    """The notifications these settings (one tenant, one mode) email customers about."""
    return frozenset(kind for kind in KINDS if getattr(settings, f"notify_{kind}"))


def get_notification_settings(principal: Principal) -> TenantSettings:
    """The caller's mode's notification settings (read from its TenantSettings)."""
    return get_tenant(principal)


def update_notification_settings(principal: Principal, changes: Mapping[str, Any]) -> TenantSettings:
    """Turn customer emails on or off in the caller's mode only (`changes`: notify_<kind> ->
    bool, as NotificationSettingsSchema loads them)."""
    settings = get_tenant(principal)
    for name, value in changes.items():
        if name.removeprefix("notify_") not in KINDS:
            raise ValueError(f"not a notification setting: {name!r}")
        setattr(settings, name, value)
    db.session.commit()
    return settings
