"""Use cases for tenants, providers, customers and API keys. Each owns its transaction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

import sqlalchemy as sa

from .. import bus, due
from ..db import db, locking, write_lock
from ..errors import Conflict, InvalidInput, NotFound
from ..pagination import Page, one, paginate
from .facts import PaymentMethodChanged
from .keys import NewKey, Principal, generate_key
from .models import SETTING_DEFAULTS, ApiKey, Customer, Provider, Tenant, TenantSettings
from .tax_ids import locale_for


@dataclass(frozen=True)
class CreatedTenant:
    tenant: TenantSettings  # its live-mode settings (test mode starts alike)
    admin_keys: dict[str, str]  # mode -> plaintext, shown once
    admin_key_ids: dict[str, str]  # mode -> the key's id, to revoke it later


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    plaintext: str  # shown once


def _store_key(tenant_id: str, livemode: bool, role: str, provider_id: str | None,
               now: datetime) -> IssuedKey:
    new: NewKey = generate_key(role, livemode)
    key = ApiKey(tenant_id=tenant_id, livemode=livemode, role=role, provider_id=provider_id,
                 key_hash=new.key_hash, hint=new.hint, created_at=now)
    db.session.add(key)
    db.session.flush()  # assigns the id, which the caller returns with the secret
    return IssuedKey(key, new.plaintext)


# --- tenants -----------------------------------------------------------------------------

def create_tenant(settings: Mapping[str, Any], now: datetime) -> CreatedTenant:
    """A tenant with the same settings in both modes, and an admin key for each. Given a
    country and no locale, it formats its documents in the country's locale (AU: en_AU)."""
    tenant = Tenant(created_at=now)
    db.session.add(tenant)
    db.session.flush()
    values = {**SETTING_DEFAULTS, **settings}
    if settings.get("country") and not settings.get("locale"):
        values["locale"] = locale_for(settings["country"], values["timezone"])
    modes = {mode: TenantSettings(tenant_id=tenant.id, livemode=mode == "live", **values) for mode in ("live", "test")}
    db.session.add_all(modes.values())
    issued = {mode: _store_key(tenant.id, mode == "live", "admin", None, now)
              for mode in ("live", "test")}
    ids = {mode: key.key.id for mode, key in issued.items()}
    db.session.commit()
    return CreatedTenant(modes["live"], {mode: key.plaintext for mode, key in issued.items()}, ids)


def settings_of(tenant_id: str, livemode: bool) -> TenantSettings | None:
    return db.session.get(TenantSettings, (tenant_id, livemode))


def tenant_settings(tenant_id: str, livemode: bool) -> TenantSettings:
    """The tenant's settings in one mode; NotFound if there is no such tenant."""
    settings = settings_of(tenant_id, livemode)
    if settings is None:
        raise NotFound(f"No such tenant: {tenant_id!r}.")
    return settings


def operator(tenant_id: str, livemode: bool) -> Principal:
    """The operator acting as the tenant's admin in one mode (the command line); NotFound if
    there is no such tenant."""
    settings = tenant_settings(tenant_id, livemode)
    return Principal(tenant_id, livemode, "admin", None, key_id="", period_anchor_day=settings.period_anchor_day,
                     timezone=settings.timezone)


def list_tenants(limit: int, starting_after: str | None = None) -> Page:
    """Every tenant (as its live-mode settings show it), newest first: the operator's view."""
    return paginate(sa.select(TenantSettings).where(TenantSettings.livemode.is_(True)),
                    TenantSettings.tenant_id, limit, starting_after)


def get_tenant(principal: Principal) -> TenantSettings:
    """The tenant as the caller's mode sees it: its settings in that mode."""
    return settings_of(principal.tenant_id, principal.livemode)


class CalendarInUse(Conflict):
    code = "calendar_in_use"


#: Settings that move when due work falls due (its lane is nudged when they change).
_SCHEDULE_SETTINGS = frozenset({"invoice_review", "auto_finalize_after_days", "charge_day", "timezone",
                                "period_anchor_day", "stripe_secret_key", "stripe_api_base", "payout_day",
                                "payout_auto_approve"})


def _hint(secret: str) -> str:
    """What the API shows of a secret: its prefix and last four characters (sk_test_…4242)."""
    prefix = secret[:secret.index("_", secret.index("_") + 1) + 1] if secret.count("_") >= 2 else secret[:6]
    return f"{prefix}…{secret[-4:]}"


def _seal_stripe_secrets(principal: Principal, changes: dict[str, Any], vault,
                         check_api_base: Callable[[str], None] | None) -> dict[str, Any]:
    mode = "live" if principal.livemode else "test"
    key = changes.get("stripe_secret_key")
    if key is not None and f"_{mode}_" not in key[:9]:
        raise InvalidInput.on("stripe_secret_key", f"A {mode}-mode key must be given in {mode} mode "
                              f"(…_{mode}_…): a key of the other mode would charge the wrong customers.",
                              "stripe_key_mode")
    if changes.get("stripe_api_base") and principal.livemode:
        raise InvalidInput.on("stripe_api_base", "Live mode always talks to Stripe itself.", "live_api_base")
    if changes.get("stripe_api_base"):
        if check_api_base is None:
            raise RuntimeError("Setting a Stripe API address needs the gateways' check")
        check_api_base(changes["stripe_api_base"])
    for name in ("stripe_secret_key", "stripe_webhook_secret"):
        if name in changes:
            secret = changes[name]
            if secret is not None and vault is None:
                raise RuntimeError("Sealing a secret needs the vault")
            changes[name] = vault.seal(secret) if secret is not None else None
            changes[f"{name}_hint"] = _hint(secret) if secret is not None else None
    return changes


def update_tenant(principal: Principal, changes: Mapping[str, Any], vault=None,
                  check_api_base: Callable[[str], None] | None = None) -> TenantSettings:
    """Change the tenant's settings in the caller's mode only: a test key never changes what live
    mode does. The calendar (anchor day, time zone) is fixed once the mode has periods: changing
    it would re-tile periods that bills and invoices already belong to. Stripe's secrets are
    sealed by `vault` and only their hints kept in the clear; a Stripe API address must pass
    `check_api_base` (the payment gateways': the operator's rules). Setting a country while the
    locale is still the default (en) and not set with it sets the country's locale too."""
    settings = get_tenant(principal)
    calendar = {k for k in ("period_anchor_day", "timezone") if k in changes and changes[k] != getattr(settings, k)}
    if calendar and _has_periods(principal.tenant_id, principal.livemode):
        raise CalendarInUse(f"{' and '.join(sorted(calendar))} cannot change once bills have been received.")
    changes = _seal_stripe_secrets(principal, dict(changes), vault, check_api_base)
    if changes.get("country") and "locale" not in changes and settings.locale == SETTING_DEFAULTS["locale"]:
        changes["locale"] = locale_for(changes["country"], settings.timezone)  # the default follows the country
    for name, value in changes.items():
        setattr(settings, name, value)
    if _SCHEDULE_SETTINGS & changes.keys():
        due.nudge(principal.tenant_id, principal.livemode)
    db.session.commit()
    return settings


#: Whether a tenant's mode already has periods (its calendar is then fixed): the periods area
#: answers (`periods.service.has_periods`), registered by the composition root (aggregator.wiring),
#: as accounts sit below periods.
_calendar_users: list[Callable[[str, bool], bool]] = []


def calendar_used_by(check: Callable[[str, bool], bool]) -> None:
    """`check(tenant_id, livemode)` says whether the mode's calendar is in use (it cannot change)."""
    if check not in _calendar_users:
        _calendar_users.append(check)


def _has_periods(tenant_id: str, livemode: bool) -> bool:
    return any(check(tenant_id, livemode) for check in _calendar_users)


# --- providers ---------------------------------------------------------------------------

def _scoped(model, principal: Principal, **equal) -> sa.Select:
    """The model's rows of the caller's tenant and mode, filtered on each column in `equal` whose
    value is not None (a list's optional filters)."""
    query = sa.select(model).where(model.tenant_id == principal.tenant_id,
                                   model.livemode == principal.livemode)
    for column, value in equal.items():
        if value is not None:
            query = query.where(getattr(model, column) == value)
    return query


def _one(model, principal: Principal, object_id: str, noun: str):
    return one(_scoped(model, principal), model.id, object_id, noun)


@dataclass(frozen=True)
class CreatedProvider:
    provider: Provider
    api_key: str  # shown once
    api_key_id: str


def create_provider(principal: Principal, fields: Mapping[str, Any], now: datetime) -> CreatedProvider:
    provider = Provider(tenant_id=principal.tenant_id, livemode=principal.livemode,
                        created_at=now, **fields)
    db.session.add(provider)
    db.session.flush()
    issued = _store_key(principal.tenant_id, principal.livemode, "provider", provider.id, now)
    key_id = issued.key.id
    db.session.commit()
    return CreatedProvider(provider, issued.plaintext, key_id)


def list_providers(principal: Principal, limit: int, starting_after: str | None = None) -> Page:
    return paginate(_scoped(Provider, principal), Provider.id, limit, starting_after)


def get_provider(principal: Principal, provider_id: str) -> Provider:
    return _one(Provider, principal, provider_id, "provider")


def update_provider(principal: Principal, provider_id: str, changes: Mapping[str, Any]) -> Provider:
    provider = get_provider(principal, provider_id)
    for name, value in changes.items():
        setattr(provider, name, value)
    db.session.commit()
    return provider


# --- keys --------------------------------------------------------------------------------

class LastAdminKey(Conflict):
    code = "last_admin_key"


def list_keys(principal: Principal, limit: int, starting_after: str | None = None,
              provider: str | None = None, role: str | None = None) -> Page:
    """The keys of the caller's tenant and mode, revoked ones included; never their secrets."""
    return paginate(_scoped(ApiKey, principal, provider_id=provider, role=role), ApiKey.id, limit,
                    starting_after)


def get_key(principal: Principal, key_id: str) -> ApiKey:
    return _one(ApiKey, principal, key_id, "API key")


def issue_admin_key(principal: Principal, now: datetime) -> IssuedKey:
    """Another admin key for the caller's tenant and mode: how an admin key is rotated (issue a
    new one, then revoke the old one)."""
    issued = _store_key(principal.tenant_id, principal.livemode, "admin", None, now)
    db.session.commit()
    return issued


@dataclass(frozen=True)
class ReissuedKey:
    issued: IssuedKey
    revoked: list[str]  # the ids of the admin keys revoked in its favour


def reissue_admin_key(principal: Principal, now: datetime, *, revoke_others: bool) -> ReissuedKey:
    """A new admin key for the caller's tenant and mode (an operator's answer to a lost key),
    and, with `revoke_others`, every other unrevoked admin key of the mode revoked in the same
    transaction: the new key is then the only one that works."""
    write_lock()
    revoked = _lock_unrevoked_admin_keys(principal) if revoke_others else []
    issued = _store_key(principal.tenant_id, principal.livemode, "admin", None, now)
    if revoked:
        db.session.execute(sa.update(ApiKey).where(ApiKey.id.in_(revoked)).values(revoked_at=now)
                           .execution_options(synchronize_session=False))
    db.session.commit()
    return ReissuedKey(issued, revoked)


def issue_provider_key(principal: Principal, provider_id: str, now: datetime) -> IssuedKey:
    provider = get_provider(principal, provider_id)
    issued = _store_key(principal.tenant_id, principal.livemode, "provider", provider.id, now)
    db.session.commit()
    return issued


def revoke_key(principal: Principal, key_id: str, now: datetime) -> ApiKey:
    """Revoke a key of the caller's tenant and mode; revoking twice keeps the first time.

    Any key may be revoked, the calling one included, except the mode's last unrevoked admin
    key (LastAdminKey): without it the tenant could no longer manage that mode through the API.
    The mode's unrevoked admin keys are locked while this is decided, so two admins revoking
    each other's keys at once cannot both succeed and leave none."""
    write_lock()
    key = get_key(principal, key_id)
    if key.role == "admin" and key.revoked_at is None:
        unrevoked = _lock_unrevoked_admin_keys(principal)
        if unrevoked == [key.id]:
            db.session.rollback()
            raise LastAdminKey("This is the last unrevoked admin key of this mode: issue another "
                               "(POST /v1/tenant/keys) before revoking it.")
        db.session.refresh(key)  # as it is now that the keys are locked
    if key.revoked_at is None:
        key.revoked_at = now
    db.session.commit()
    return key


def _lock_unrevoked_admin_keys(principal: Principal) -> list[str]:
    """The ids of the mode's unrevoked admin keys, locked in id order (no deadlock between two
    revocations) until the transaction ends."""
    return list(db.session.scalars(locking(
        sa.select(ApiKey.id).where(ApiKey.tenant_id == principal.tenant_id,
                                   ApiKey.livemode == principal.livemode, ApiKey.role == "admin",
                                   ApiKey.revoked_at.is_(None)).order_by(ApiKey.id))))


# --- customers ---------------------------------------------------------------------------

def create_customer(principal: Principal, fields: Mapping[str, Any], now: datetime) -> Customer:
    fields = dict(fields)
    if not fields.get("currency"):
        fields["currency"] = get_tenant(principal).default_currency
    customer = Customer(tenant_id=principal.tenant_id, livemode=principal.livemode,
                        created_at=now, **fields)
    db.session.add(customer)
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        message = f"A customer with external_id {fields['external_id']!r} already exists."
        raise Conflict(message, code="external_id_taken", fields={"external_id": [message]}) from None
    return customer


def list_customers(principal: Principal, limit: int, starting_after: str | None = None,
                   external_id: str | None = None) -> Page:
    return paginate(_scoped(Customer, principal, external_id=external_id), Customer.id, limit, starting_after)


def get_customer(principal: Principal, customer: str) -> Customer:
    """The customer whose id (cus_…) is `customer`, else the one whose external_id is."""
    found = db.session.scalars(
        _scoped(Customer, principal).where(sa.or_(Customer.id == customer, Customer.external_id == customer))
        .order_by((Customer.id == customer).desc())).first()
    if found is None:
        raise NotFound(f"No customer with id or external_id {customer!r} in {principal.mode} mode.")
    return found


def find_customer(principal: Principal, external_id: str) -> Customer:
    found = db.session.scalars(
        _scoped(Customer, principal).where(Customer.external_id == external_id)).first()
    if found is None:
        raise NotFound(f"No customer with external_id {external_id!r}.")
    return found


def update_customer(principal: Principal, customer_id: str, changes: Mapping[str, Any],
                    now: datetime | None = None) -> Customer:
    """Change a customer. A new payment method is published (`PaymentMethodChanged`, as of
    `now`): payments puts the open invoices that wait for one (a hard decline, an
    authentication required, retries run out) up for a charge at once."""
    customer = get_customer(principal, customer_id)
    new_method = changes.get("stripe_payment_method")
    if new_method and new_method != customer.stripe_payment_method and now is not None:
        bus.publish(PaymentMethodChanged(customer.tenant_id, customer.livemode, customer.id, now))
    for name, value in changes.items():
        setattr(customer, name, value)
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        message = "Another customer already has that external_id."
        raise Conflict(message, code="external_id_taken", fields={"external_id": [message]}) from None
    return customer


_credit_balances: list[Callable[[str], int]] = []


def credit_balances_from(balance: Callable[[str], int]) -> None:
    """`balance(customer_id)`: the customer's credits not yet applied to an invoice (credits are
    invoicing's; the composition root hands the reader down, so accounts imports no area above it)."""
    if balance not in _credit_balances:
        _credit_balances.append(balance)


def with_credit_balance(customer: Customer) -> Customer:
    """The customer, with `credit_balance`: its credits not yet applied to an invoice."""
    customer.credit_balance = sum(balance(customer.id) for balance in _credit_balances)
    return customer
