"""Events: every change worth announcing, written in the transaction that makes it (the outbox),
listed through the API and delivered to webhook endpoints and by email."""
