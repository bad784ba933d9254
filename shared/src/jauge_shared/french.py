"""French reasons for pydantic's validation errors: one table for every service.

pydantic's messages are English; agents read French. The gateway's parcel form and
colis-svc's task errors both word a field's problem from this table (issue 17: it was
written in both, and had drifted). A type not listed keeps pydantic's own text.
"""

from __future__ import annotations

from typing import Final

from pydantic_core import ErrorDetails

VALIDATION_MESSAGES_FR: Final[dict[str, str]] = {
    "missing": "obligatoire",
    "extra_forbidden": "champ inconnu",
    "greater_than": "doit être supérieur à {gt}",
    "greater_than_equal": "doit être au moins {ge}",
    "less_than": "doit être inférieur à {lt}",
    "less_than_equal": "doit être au plus {le}",
    "decimal_parsing": "doit être un nombre",
    "decimal_type": "doit être un nombre",
    # "inf" or "nan" typed in a form: a number is what the agent must type
    "finite_number": "doit être un nombre",
    "decimal_max_digits": "{max_digits} chiffres au plus",
    "decimal_max_places": "{decimal_places} décimales au plus",
    "enum": "doit valoir {expected}",
    "string_type": "doit être un texte",
    "string_too_short": "ne doit pas être vide",
    "string_too_long": "trop long ({max_length} caractères au plus)",
}


def french_reason(error: ErrorDetails) -> str:
    """What is wrong with one field, in French (pydantic's text if the type is unlisted
    or its template needs a value the error does not carry)."""
    template = VALIDATION_MESSAGES_FR.get(error["type"])
    if template is None:
        return error["msg"]
    try:
        return template.format(**error.get("ctx", {}))
    except (KeyError, IndexError):
        return error["msg"]
