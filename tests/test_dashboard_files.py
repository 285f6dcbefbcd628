"""/app serves the built dashboard, index.html for client routes; the typed client is current."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpx import AsyncClient

from backend.config import get_settings
from backend.dashboard.openapi import schema_json

REPO = Path(__file__).resolve().parent.parent
GENERATED = REPO / "web" / "src" / "api" / "schema.d.ts"
GENERATOR = REPO / "web" / "node_modules" / ".bin" / "openapi-typescript"


@pytest.fixture
def web_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><div id=root></div>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    settings = get_settings()
    saved = settings.web_dir
    settings.web_dir = tmp_path
    yield tmp_path
    settings.web_dir = saved


@pytest.mark.parametrize("path", ["/app", "/app/", "/app/assistants/123", "/app/login"])
async def test_client_routes_get_index_html(client: AsyncClient, web_dir: Path, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.text == "<!doctype html><div id=root></div>"
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"


async def test_built_assets_are_served_and_cached_for_good(
    client: AsyncClient, web_dir: Path
) -> None:
    response = await client.get("/app/assets/index-abc123.js")
    assert response.status_code == 200
    assert response.text == "console.log(1)"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    other = await client.get("/app/favicon.svg")
    assert other.headers["cache-control"] == "public, max-age=300"


async def test_a_missing_asset_is_404_and_nothing_outside_the_folder_is_served(
    client: AsyncClient, web_dir: Path
) -> None:
    missing = await client.get("/app/assets/gone-000.js")
    assert missing.status_code == 404
    (web_dir.parent / "secret.txt").write_text("not for you")
    escaped = await client.get("/app/%2E%2E/secret.txt")
    assert "not for you" not in escaped.text


async def test_an_unbuilt_dashboard_says_how_to_build_it(
    client: AsyncClient, web_dir: Path
) -> None:
    shutil.rmtree(web_dir)
    response = await client.get("/app/assistants")
    assert response.status_code == 404
    assert response.json()["detail"] == "The dashboard is not built: run `make web` (npm, in web/)."


def test_the_generated_api_client_matches_the_schema(tmp_path: Path) -> None:
    if not GENERATOR.exists():
        pytest.fail("web/node_modules is missing: `make web-check` (or `make test`) installs it.")
    schema = tmp_path / "openapi.json"
    schema.write_text(schema_json())
    fresh = tmp_path / "schema.d.ts"
    subprocess.run(  # noqa: S603  (our own generator, on our own schema)
        [str(GENERATOR), str(schema), "--default-non-nullable", "false", "-o", str(fresh)],
        check=True,
        capture_output=True,
        cwd=REPO / "web",
    )
    assert fresh.read_text() == GENERATED.read_text(), (
        "web/src/api/schema.d.ts is stale: run `make web-api` and commit it."
    )
