"""service-info tells `flowdeck login --oidc` where to sign in, when the operator set a CLI client."""

from __future__ import annotations

from pathlib import Path

from flowdeck.settings import Settings
from tests.integration.test_service_info_defaults import service_info

OIDC = {"auth_mode": "oidc", "oidc_issuer": "https://id.example.org/realms/lab", "oidc_audience": "flowdeck"}


async def test_the_cli_client_is_advertised_only_when_configured(tmp_path: Path) -> None:
    plain = (await service_info(Settings(data_dir=tmp_path / "plain", **OIDC))).json()["tags"]
    assert not [key for key in plain if key.startswith("oidc_")]
    settings = Settings(
        data_dir=tmp_path / "cli", oidc_cli_client_id="flowdeck-cli", oidc_cli_scopes="openid lab", **OIDC
    )
    tags = (await service_info(settings)).json()["tags"]
    assert tags["oidc_issuer"] == "https://id.example.org/realms/lab"
    assert tags["oidc_cli_client_id"] == "flowdeck-cli"
    assert tags["oidc_cli_scopes"] == "openid lab"
    basic = Settings(data_dir=tmp_path / "basic", auth_mode="basic", oidc_cli_client_id="flowdeck-cli")
    assert "oidc_cli_client_id" not in (await service_info(basic)).json()["tags"]
