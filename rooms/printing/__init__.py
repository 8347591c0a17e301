"""Printing people's text into PDF documents (invoices, settlement agreements)."""
