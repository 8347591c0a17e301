"""Accounts: users and signing in (passwords and the breached-password list, TOTP and
recovery codes, server-side sessions, trusted devices, the login throttle)."""
