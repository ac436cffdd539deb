"""Periodic tasks of beat that are not part of sending (delivery reports, reminders)."""
