"""Dashboards and alert rules for every WebApplication: generated, applied, kept in sync."""
