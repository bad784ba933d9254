"""Contracts and common plumbing shared by every Jauge service."""
