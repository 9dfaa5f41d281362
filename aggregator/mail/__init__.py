"""Email: what is sent when (a subscriber of the outbox records deliveries), the deliveries
queue that sends them through the mailer adapter, and their API."""
