"""Webhooks: endpoints registered by a tenant (or one of its providers), to which every event
they subscribe to is delivered, signed by the Standard Webhooks spec, at least once, retried for
about three days before the endpoint is disabled."""
