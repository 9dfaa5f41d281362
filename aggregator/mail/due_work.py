"""What the mail area registers with aggregator.due: its queue (deliveries to send)."""
from __future__ import annotations

from ..due import Queue, waiting
from . import delivery_service
from .models import EmailDelivery


def _backlog():
    deliveries = EmailDelivery.__table__
    return waiting(deliveries, deliveries.c.status == "pending")


EMAIL_QUEUE = Queue("email.send", delivery_service.send_batch, batch=delivery_service.SEND_BATCH, backlog=_backlog)
QUEUES = [EMAIL_QUEUE]
