"""The parcel form as the parcel routes read it: its fields and their French error
messages, its photo (streamed to disk and checked as it arrives, or the id of a
resumable upload still on its way) and its OpenAPI description (the routes read the
multipart body themselves, so FastAPI cannot describe it)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from gateway.photo_handovers import PhotoHandovers
from gateway.photo_stream import ParcelFormParser, PhotoSink
from gateway.quantities import DIMENSION_DIGITS, WEIGHT_DIGITS, quantity_pattern
from gateway.settings import GatewaySettings
from gateway.upload_access import bind_upload
from gateway.users import User
from jauge_shared.contracts import ColisData
from jauge_shared.french import french_reason

FORM_FIELDS = tuple(ColisData.model_fields)
UPLOAD_ID_FIELD = re.compile(r"^[0-9a-f]{32}$")


def form_schema(required: bool) -> dict[str, Any]:
    """The multipart form of the parcel routes, for the OpenAPI document (the routes read
    it themselves, streaming the photo): every field as text, `image` a file."""
    schema = ColisData.model_json_schema()
    properties: dict[str, Any] = {}
    for name, field in schema["properties"].items():
        if "anyOf" in field:  # a Decimal: a form field is text, with its own pattern
            digits = WEIGHT_DIGITS if name == "poids" else DIMENSION_DIGITS
            field = {"type": "string", "pattern": quantity_pattern(digits)}
        elif "$ref" in field:
            field = schema["$defs"][field["$ref"].rsplit("/", 1)[1]]
        elif field.get("type") == "string" and name in schema.get("required", ()):
            # a field of blanks counts as missing (an optional one then takes its default)
            field = {**field, "pattern": r"\S"}
        properties[name] = {k: v for k, v in field.items() if k not in ("title", "default")}
    properties["image"] = {
        "type": "string",
        "format": "binary",
        "description": "The parcel's photo: JPEG, PNG, WEBP, GIF, BMP or TIFF.",
    }
    properties["upload_id"] = {
        "type": "string",
        "pattern": UPLOAD_ID_FIELD.pattern,
        "description": (
            "Instead of `image`: a resumable upload of the caller's (`/api/uploads`) whose "
            "bytes may still be on their way; the answer does not wait for them."
        ),
    }
    body: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        body["required"] = [n for n in schema.get("required", []) if n in properties]
    return {
        "requestBody": {
            "required": required,
            "content": {"multipart/form-data": {"schema": body}},
        }
    }


def invalid_form(error: ValidationError) -> InvalidForm:
    problems = []
    for item in error.errors()[:20]:
        field = ".".join(str(p) for p in item["loc"]) or "body"
        problems.append({"field": field, "message": french_reason(item)})
    return InvalidForm(problems)


class InvalidForm(HTTPException):
    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(422, detail="Données invalides : vérifiez les champs indiqués.")
        self.problems = problems


def invalid_response(exc: InvalidForm) -> JSONResponse:
    return JSONResponse({"detail": exc.detail, "errors": exc.problems}, status_code=422)


async def read_form(
    request: Request, settings: GatewaySettings
) -> tuple[dict[str, str], PhotoSink | str | None]:
    """The form's fields, and its photo: a file part `image`, already on disk and checked
    (see photo_stream), or the `upload_id` of a resumable upload (routers/uploads.py)
    whose bytes may still be on their way."""
    parser = ParcelFormParser(
        request.headers,
        request.stream(),
        folder=settings.data_dir / "uploads" / "colis",
        max_bytes=settings.max_photo_bytes,
        max_pixels=settings.max_photo_pixels,
        max_files=1,
        max_fields=len(FORM_FIELDS) + 4,
    )
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await parser.parse()
        else:  # a form without a photo may come urlencoded
            form = await request.form(max_files=0, max_fields=len(FORM_FIELDS) + 4)
    except HTTPException:
        raise  # a photo refused as it arrived
    except Exception as e:
        raise HTTPException(
            400, detail="Formulaire illisible : envoyez un multipart/form-data."
        ) from e
    photo: PhotoSink | str | None = parser.sinks[0] if parser.sinks else None
    fields: dict[str, str] = {}
    try:
        for key, value in form.multi_items():
            if key == "image":
                if isinstance(value, UploadFile) and not value.filename:
                    photo = None  # an empty file input: no photo
            elif key == "upload_id" and isinstance(value, str):
                if not UPLOAD_ID_FIELD.fullmatch(value):
                    raise InvalidForm([{"field": key, "message": "identifiant d'envoi invalide"}])
                if parser.sinks:
                    raise HTTPException(
                        400, detail="Formulaire illisible : une photo ou un envoi, pas les deux."
                    )
                photo = value
            elif key in FORM_FIELDS and isinstance(value, str):
                if value.strip() != "":
                    fields[key] = value
            else:
                raise InvalidForm([{"field": key, "message": "champ inconnu"}])
    except BaseException:
        for sink in parser.sinks:
            sink.discard()
        raise
    if photo is None:
        for sink in parser.sinks:
            sink.discard()
    return fields, photo


def discard(photo: PhotoSink | str | None) -> None:
    """A photo of this request goes; a resumable upload stays (the form may come again)."""
    if isinstance(photo, PhotoSink):
        photo.discard()


async def keep_photo(
    settings: GatewaySettings,
    handovers: PhotoHandovers,
    user: User,
    photo: PhotoSink | str | None,
    task_id: str,
) -> tuple[str | None, bool]:
    """The task's upload id, and whether its bytes are still coming: a photo of this
    request (its last checks done) kept for the task and handed over after the answer
    (photo_handovers.py), or a resumable upload bound to the task."""
    if photo is None:
        return None, False
    if isinstance(photo, str):
        pending = await asyncio.to_thread(bind_upload, settings, user, photo, task_id)
        return photo, pending
    upload_id = await asyncio.to_thread(handovers.keep, photo, user.username, task_id)
    return upload_id, True
