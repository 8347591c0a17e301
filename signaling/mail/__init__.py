"""Mail: the outbox sender, the templates and the transports (SMTP, or .eml files)."""
