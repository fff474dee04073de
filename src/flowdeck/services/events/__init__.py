"""Events out of the service: the live stream, the outbox, webhooks and e-mail."""
