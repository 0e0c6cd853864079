"""Thin outer loops behind each CLI command."""
