"""The small exception hierarchy every service uses to say how a message failed."""

from __future__ import annotations


class JaugeError(Exception):
    """Base of every error raised on purpose by Jauge code."""


class PoisonMessageError(JaugeError):
    """The message can never be processed as it is: it goes to the dead-letter queue."""


class TransientError(JaugeError):
    """Worth retrying later: a store or broker that is briefly away, a timeout."""
