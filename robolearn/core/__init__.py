"""Shared types and plumbing. Imports nothing else of robolearn."""
