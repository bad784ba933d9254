"""docs/configuration.md is the render of the settings classes, never stale."""

from __future__ import annotations

from pathlib import Path

from jauge_shared.settings import ServiceSettings
from jauge_tools import configdoc

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_committed_configuration_doc_is_up_to_date() -> None:
    assert DOC.read_text() == configdoc.render(), "docs/configuration.md is stale: run `make docs`"


def test_every_setting_of_every_service_is_documented() -> None:
    text = configdoc.render()
    for name in ServiceSettings.model_fields:
        assert f"`JAUGE_{name.upper()}`" in text
    for _, module, cls in configdoc.SERVICES:
        settings = configdoc.load(module, cls)
        for name in settings.model_fields:
            assert f"`JAUGE_{name.upper()}`" in text, (cls, name)
    assert "`JAUGE_JWT_SECRET` | secret (32+ characters) | **required**" in text
