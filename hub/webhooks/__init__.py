"""Webhooks: every event of an account's sessions, in seq order, at least once, signed
per the Standard Webhooks specification (see `docs/integration.md`)."""
