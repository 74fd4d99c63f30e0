"""Adapters for Herald's ports: PostgreSQL, procrastinate, SMTP, tokens, hashing."""
