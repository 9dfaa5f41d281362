"""`aggregator tenants|providers|customers …`: operator commands over the accounts use cases."""
from __future__ import annotations

from typing import Any

import click

from .. import adapters as edge
from ..commands import (
    AreaGroup,
    checked,
    json_option,
    list_options,
    now_for,
    print_json,
    print_object,
    print_page,
    print_record,
    say,
    tenant_scoped,
)
from . import notifications as notification_settings
from . import service
from .schemas import ApiKeySchema, CustomerSchema, NotificationSettingsSchema, ProviderSchema, TenantSchema

tenants = AreaGroup("tenants", help="Create, inspect and change tenants (the platforms), and their admin keys.")
providers = AreaGroup("providers", help="A tenant's providers (the apps that send bills).")
customers = AreaGroup("customers", help="A tenant's customers (who receive the consolidated invoices).")
notifications = AreaGroup("notifications", help="Which emails a tenant's customers are sent, in each mode.")

_MODES = {"live": True, "test": False}


def _address(ctx, param, pairs: tuple[str, ...]) -> dict[str, str] | None:
    """--address line1='1 George St' --address city=Sydney … -> {"line1": …, "city": …}."""
    if not pairs:
        return None
    address = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not FIELD=VALUE (line1, line2, city, state, postal_code, country).")
        address[name.strip()] = value
    return address


def _tax_ids(ctx, param, pairs: tuple[str, ...]) -> list[dict[str, str]] | None:
    """--tax-id au_abn='83 914 571 673' (repeat for several) -> [{"type", "value"}]; --tax-id none -> []."""
    if not pairs:
        return None
    if pairs == ("none",):
        return []
    found = []
    for pair in pairs:
        type_, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not TYPE=VALUE (eu_vat=DE136695976, au_abn=83914571673).")
        found.append({"type": type_.strip(), "value": value})
    return found


def _payment_instructions(ctx, param, pairs: tuple[str, ...]) -> dict[str, str] | str | None:
    """--payment-instructions iban=… --payment-instructions bic=… -> a dict; none -> "none" (cleared)."""
    if pairs == ("none",):
        return "none"
    return _address(ctx, param, pairs)


_VOID_FINALIZED = {"allow": True, "forbid": False, "country": None}


# --- tenants ----------------------------------------------------------------------------------

#: TenantSchema field -> the option that sets it
_TENANT_OPTIONS = {"name": "--name", "legal_name": "--legal-name", "timezone": "--timezone",
                   "default_currency": "--currency", "period_anchor_day": "--anchor-day",
                   "charge_day": "--charge-day", "invoice_prefix": "--invoice-prefix", "locale": "--locale",
                   "default_tax_rate": "--tax-rate", "address": "--address", "email_from": "--email-from",
                   "email_from_name": "--email-from-name", "email_reply_to": "--email-reply-to",
                   "finance_email": "--finance-email", "invoice_review": "--invoice-review",
                   "auto_finalize_after_days": "--auto-finalize-after-days",
                   "payment_terms_days": "--payment-terms-days", "country": "--country", "tax_ids": "--tax-id",
                   "tax_name": "--tax-name", "invoice_title": "--invoice-title",
                   "reverse_charge": "--reverse-charge", "payment_instructions": "--payment-instructions",
                   "void_finalized": "--void-finalized", "invoice_line_limit": "--invoice-line-limit"}


def _setting_options(create: bool):
    """The options of `tenants create` (with its defaults) and `tenants update` (none: only
    what is given changes)."""
    def default(value):
        return value if create else None

    options = [
        click.option("--name", required=create, help="The platform's name."),
        click.option("--legal-name", help="As invoices show it (defaults to the name)."),
        click.option("--timezone", default=default("UTC"), show_default=create, help="IANA time zone."),
        click.option("--currency", default=default("USD"), show_default=create, help="Default ISO 4217 currency."),
        click.option("--anchor-day", type=int, default=default(25), show_default=create,
                     help="Day of the month (1-28) the invoicing period starts."),
        click.option("--charge-day", type=int, default=default(2), show_default=create,
                     help="Day of the month (1-28)."),
        click.option("--invoice-prefix", default=default("INV"), show_default=create,
                     help="1-16 upper-case letters, digits or dashes."),
        click.option("--locale", help="How invoices format amounts and dates, e.g. en_AU (default: the "
                                      "country's, else en)."),
        click.option("--tax-rate", default=default("0"), show_default=create,
                     help='Default tax rate, "0.10" = 10 %.'),
        click.option("--address", multiple=True, callback=_address, metavar="FIELD=VALUE",
                     help="Repeat: line1=…, line2=…, city=…, state=…, postal_code=…, country=AU."),
        click.option("--email-from", help="Sender address of emails to customers."),
        click.option("--email-from-name", help="Sender name of emails to customers."),
        click.option("--email-reply-to", help="Where customers' replies go."),
        click.option("--finance-email", help="Receives period summaries and notices."),
        click.option("--invoice-review", type=click.Choice(["auto", "manual"]), default=default("auto"),
                     show_default=create, help="manual: invoices stay drafts until finalized."),
        click.option("--auto-finalize-after-days", type=int,
                     help="Under manual review, drafts are finalized after this many days."),
        click.option("--payment-terms-days", metavar="DAYS|none",
                     help="Invoices are due this many days (0-365) after they are issued; none: on the charge day."),
        click.option("--country", help="Where the tenant is established (ISO alpha-2, e.g. AU)."),
        click.option("--tax-id", multiple=True, callback=_tax_ids, metavar="TYPE=VALUE|none",
                     help="Repeat for several: eu_vat=DE136695976, au_abn=83914571673 … (replaces the list; "
                          "none: no tax id)."),
        click.option("--tax-name", help="What the tax is called on invoices: VAT, GST (default Tax)."),
        click.option("--invoice-title", help="The invoices' title, e.g. 'Tax invoice' (default Invoice)."),
        click.option("--reverse-charge/--no-reverse-charge", default=None,
                     help="Reverse charge exempt EU business customers in another member state."),
        click.option("--payment-instructions", multiple=True, callback=_payment_instructions,
                     metavar="FIELD=VALUE|none", help="Repeat: account_holder=…, iban=…, bic=…, bsb=…, "
                     "account_number=…, bank_name=…, reference=… (replaces them; none: no instructions)."),
        click.option("--void-finalized", type=click.Choice(list(_VOID_FINALIZED)),
                     help="Whether finalized invoices may be voided; country: no in the EU, yes elsewhere."),
        click.option("--invoice-line-limit", type=int,
                     help="Past this many lines an invoice's PDF attaches its detail as CSV (default 2000)."),
    ]

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def _settings(options: dict[str, Any], partial: bool) -> dict[str, Any]:
    """Command options -> TenantSchema input, checked (options not given are left out)."""
    values = {field: options[option.removeprefix("--").replace("-", "_")]
              for field, option in _TENANT_OPTIONS.items()}
    values = {field: value for field, value in values.items() if value is not None}
    if values.get("payment_instructions") == "none":
        values["payment_instructions"] = None
    if "void_finalized" in values:
        values["void_finalized"] = _VOID_FINALIZED[values["void_finalized"]]
    if "payment_terms_days" in values:  # a number of days, or "none" (back to the charge day)
        days = values["payment_terms_days"]
        values["payment_terms_days"] = None if days.lower() == "none" else int(days) if days.isdigit() else days
    return checked(TenantSchema(partial=partial), values, _TENANT_OPTIONS)


@tenants.command("create")
@_setting_options(create=True)
@json_option
def create(as_json, **options):
    """Create a tenant (both modes alike) and show its admin keys, live and test, once.

    Options are checked by the rules of PATCH /v1/tenant: a bad one is a usage error (exit
    status 2). With --json: {"id", "admin_keys": {"live", "test"}, "admin_key_ids": {…}}."""
    settings = _settings(options, partial=False)
    settings.setdefault("legal_name", settings["name"])
    created = service.create_tenant(settings, edge.current().clocks.base.now())
    if as_json:
        print_json({"id": created.tenant.id, "admin_keys": created.admin_keys,
                    "admin_key_ids": created.admin_key_ids})
        return
    say(f"Created tenant {created.tenant.id} ({created.tenant.name}).")
    say("Admin keys, shown once (keep them now):")
    for mode, key in created.admin_keys.items():
        say(f"  {mode}: {key}   (id {created.admin_key_ids[mode]})")


@tenants.command("list")
@list_options
@json_option
def list_(limit, starting_after, as_json):
    """Every tenant, newest first (names as live mode has them)."""
    print_page(service.list_tenants(limit, starting_after), TenantSchema(),
               ["id", "name", "timezone", "default_currency", "period_anchor_day", "created_at"],
               "Tenants", as_json)


@tenants.command("show")
@click.argument("tenant_id", metavar="TENANT")
@json_option
def show(tenant_id, as_json):
    """A tenant's settings in both modes (each mode has its own)."""
    modes = {mode: TenantSchema().dump(service.tenant_settings(tenant_id, livemode))
             for mode, livemode in _MODES.items()}
    if as_json:
        print_json(modes)
        return
    for mode, settings in modes.items():
        print_record(settings, f"{tenant_id}, {mode} mode")


@tenants.command("update")
@click.argument("tenant_id", metavar="TENANT")
@click.option("--mode", type=click.Choice(list(_MODES)), required=True,
              help="The mode whose settings change (the other keeps its own).")
@_setting_options(create=False)
@json_option
def update(tenant_id, mode, as_json, **options):
    """Change a tenant's settings in one mode, by the rules of PATCH /v1/tenant (the calendar is
    fixed once bills have been received)."""
    changes = _settings(options, partial=True)
    if not changes:
        raise click.UsageError("Nothing to change: give at least one setting option.")
    adapters = edge.current()
    settings = service.update_tenant(service.operator(tenant_id, _MODES[mode]), changes, adapters.vault,
                                     adapters.payments.check_tenant_api_base)
    print_object(settings, TenantSchema(), f"{tenant_id}, {mode} mode", as_json)


keys = AreaGroup("keys", help="A tenant's admin keys.")
tenants.add_command(keys)


_mode = click.option("--mode", type=click.Choice(list(_MODES)), required=True)


@keys.command("list")
@click.argument("tenant_id", metavar="TENANT")
@_mode
@list_options
@json_option
def list_keys(tenant_id, mode, limit, starting_after, as_json):
    """The keys of one mode of a tenant, revoked ones included (never a secret)."""
    principal = service.operator(tenant_id, _MODES[mode])
    print_page(service.list_keys(principal, limit, starting_after), ApiKeySchema(),
               ["id", "role", "provider", "hint", "created_at", "revoked_at"], "API keys", as_json)


@keys.command("reissue")
@click.argument("tenant_id", metavar="TENANT")
@_mode
@click.option("--revoke-others", is_flag=True,
              help="Also revoke every other admin key of this mode (a lost or leaked key).")
@json_option
def reissue(tenant_id, mode, revoke_others, as_json):
    """Issue a new admin key for one mode of a tenant, shown once."""
    principal = service.operator(tenant_id, _MODES[mode])
    result = service.reissue_admin_key(principal, now_for(principal), revoke_others=revoke_others)
    key = result.issued
    if as_json:
        print_json({**ApiKeySchema().dump(key.key), "secret": key.plaintext, "revoked": result.revoked})
        return
    say(f"New {mode} admin key for {tenant_id}, shown once: {key.plaintext}   (id {key.key.id})")
    if result.revoked:
        say(f"Revoked: {', '.join(result.revoked)}")


# --- providers --------------------------------------------------------------------------------

@providers.command("create")
@tenant_scoped
@click.option("--name", required=True)
@click.option("--email", default=None)
@click.option("--revenue-share", "revenue_share_rate", default="0", show_default=True,
              help='The platform\'s cut of revenue-sharing bills, "0.30" = 30 %.')
@json_option
def create_provider(principal, as_json, **fields):
    """Add a provider and show its API key once."""
    fields = checked(ProviderSchema(), {k: v for k, v in fields.items() if v is not None},
                     {"name": "--name", "email": "--email", "revenue_share_rate": "--revenue-share"})
    created = service.create_provider(principal, fields, now_for(principal))
    if as_json:
        print_json({**ProviderSchema().dump(created.provider), "api_key": created.api_key,
                    "api_key_id": created.api_key_id})
        return
    print_object(created.provider, ProviderSchema(), "Provider", False)
    say(f"API key, shown once: {created.api_key}   (id {created.api_key_id})")


@providers.command("list")
@tenant_scoped
@list_options
@json_option
def list_providers(principal, limit, starting_after, as_json):
    """The tenant's providers in this mode, newest first."""
    print_page(service.list_providers(principal, limit, starting_after), ProviderSchema(),
               ["id", "name", "email", "revenue_share_rate", "created_at"], "Providers", as_json)


@providers.command("show")
@tenant_scoped
@click.argument("provider_id", metavar="PROVIDER")
@json_option
def show_provider(principal, provider_id, as_json):
    """One provider."""
    print_object(service.get_provider(principal, provider_id), ProviderSchema(), "Provider", as_json)


# --- customers --------------------------------------------------------------------------------

@customers.command("create")
@tenant_scoped
@click.option("--external-id", required=True, help="How providers name this customer in their bills.")
@click.option("--name", default=None)
@click.option("--email", default=None)
@click.option("--currency", default=None, help="Invoice currency (default: the tenant's).")
@click.option("--tax-rate", default=None, help="Overrides the tenant's default rate.")
@click.option("--tax-exempt", is_flag=True, default=None)
@click.option("--tax-id", "tax_ids", multiple=True, callback=_tax_ids, metavar="TYPE=VALUE",
              help="Repeat for several: eu_vat=FR40303265045, au_abn=83914571673 …")
@click.option("--address", multiple=True, callback=_address, metavar="FIELD=VALUE",
              help="Repeat: line1=…, line2=…, city=…, state=…, postal_code=…, country=FR.")
@json_option
def create_customer(principal, as_json, **fields):
    """Add a customer."""
    fields = checked(CustomerSchema(), {k: v for k, v in fields.items() if v is not None}, _CUSTOMER_OPTIONS)
    print_object(service.create_customer(principal, fields, now_for(principal)), CustomerSchema(),
                 "Customer", as_json)


#: CustomerSchema field -> the option that sets it
_CUSTOMER_OPTIONS = {"external_id": "--external-id", "name": "--name", "email": "--email", "currency": "--currency",
                     "tax_rate": "--tax-rate", "tax_exempt": "--tax-exempt", "tax_ids": "--tax-id",
                     "address": "--address"}


@customers.command("update")
@tenant_scoped
@click.argument("customer", metavar="CUSTOMER")
@click.option("--name", default=None)
@click.option("--email", default=None)
@click.option("--tax-rate", default=None, help="Overrides the tenant's default rate.")
@click.option("--tax-exempt/--no-tax-exempt", default=None)
@click.option("--tax-id", "tax_ids", multiple=True, callback=_tax_ids, metavar="TYPE=VALUE|none",
              help="Repeat for several (replaces the list; none: no tax id).")
@click.option("--address", multiple=True, callback=_address, metavar="FIELD=VALUE",
              help="Repeat: line1=…, city=…, country=FR … (replaces the address).")
@json_option
def update_customer(principal, customer, as_json, **fields):
    """Change a customer (by its id or external id), by the rules of PATCH /v1/customers/{id}."""
    changes = checked(CustomerSchema(partial=True), {k: v for k, v in fields.items() if v is not None},
                      _CUSTOMER_OPTIONS)
    if not changes:
        raise click.UsageError("Nothing to change: give at least one option.")
    print_object(service.update_customer(principal, customer, changes, now_for(principal)), CustomerSchema(),
                 "Customer", as_json)


@customers.command("list")
@tenant_scoped
@list_options
@click.option("--external-id", default=None, help="Only the customer with this external id.")
@json_option
def list_customers(principal, limit, starting_after, external_id, as_json):
    """The tenant's customers in this mode, newest first."""
    print_page(service.list_customers(principal, limit, starting_after, external_id), CustomerSchema(),
               ["id", "external_id", "name", "email", "currency", "created_at"], "Customers", as_json)


@customers.command("show")
@tenant_scoped
@click.argument("customer", metavar="CUSTOMER")
@json_option
def show_customer(principal, customer, as_json):
    """One customer, by its id (cus_…) or its external id."""
    print_object(service.get_customer(principal, customer), CustomerSchema(), "Customer", as_json)


# --- notifications ----------------------------------------------------------------------------

#: NotificationSettingsSchema field -> the option that sets it
_NOTIFICATION_OPTIONS = {kind: f"--{kind.replace('_', '-')}" for kind in notification_settings.KINDS}


@notifications.command("show")
@tenant_scoped
@json_option
def show_notifications(principal, as_json):
    """Which emails customers are sent in this mode (webhooks follow their endpoints)."""
    print_object(notification_settings.get_notification_settings(principal), NotificationSettingsSchema(),
                 f"Notifications ({principal.mode} mode)", as_json)


@notifications.command("set")
@tenant_scoped
@click.option("--invoice-generated/--no-invoice-generated", default=None, help="Email customers their invoice.")
@click.option("--payment-received/--no-payment-received", default=None, help="Email a receipt when paid.")
@click.option("--payment-overdue/--no-payment-overdue", default=None, help="Email a notice when overdue.")
@click.option("--usage-threshold/--no-usage-threshold", default=None, help="Email when usage reaches a threshold.")
@json_option
def set_notifications(principal, as_json, **options):
    """Turn customer emails on or off in this mode only, as PATCH /v1/notification_settings."""
    values = {kind: value for kind, value in options.items() if value is not None}
    if not values:
        raise click.UsageError("Nothing to change: give at least one notification option.")
    changes = checked(NotificationSettingsSchema(partial=True), values, _NOTIFICATION_OPTIONS)
    print_object(notification_settings.update_notification_settings(principal, changes),
                 NotificationSettingsSchema(), f"Notifications ({principal.mode} mode)", as_json)
