"""Bundled network / target specs (package data)."""
