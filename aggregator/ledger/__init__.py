"""The ledger: every money movement as a balanced double-entry journal per currency, append-only
(the database refuses an UPDATE or DELETE of a posted journal or entry; a correction is a new
journal), with balances, a trial balance and the journals listed through the API and the CLI."""
