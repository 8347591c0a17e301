"""Billing: money in integer minor units, fee shares, and invoices as PDF and HTML."""
