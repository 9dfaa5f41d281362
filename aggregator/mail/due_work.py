"""What the mail area registers with aggregator.due: its queue (deliveries to send)."""
from __future__ import annotations

from ..due import Queue
from . import delivery_service

EMAIL_QUEUE = Queue("email.send", delivery_service.send_batch, batch=delivery_service.SEND_BATCH)
QUEUES = [EMAIL_QUEUE]
