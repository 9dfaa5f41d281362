"""Bill intake: providers submit bills, idempotently, one at a time or in batches."""
