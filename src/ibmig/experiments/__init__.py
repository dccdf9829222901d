"""Scenarios, runners, metrics, reports: the layer that may print and read the clock."""
