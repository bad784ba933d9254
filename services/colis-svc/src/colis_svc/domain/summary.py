"""The short description of a parcel that the task dashboard shows, in French.

Owned by colis-svc's contracts (`jauge_shared.contracts.colis`), so that the gateway and
colis-svc write the same summary for every frame of a task; named here for the domain.
"""

from __future__ import annotations

from jauge_shared.contracts.colis import TRANSPORT_LABELS, format_dimensions, format_fr, summarize

__all__ = ["TRANSPORT_LABELS", "format_dimensions", "format_fr", "summarize"]
