"""Scheduling: a neutral's availability and open slots, and calendar files for sessions."""
