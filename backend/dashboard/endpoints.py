"""The dashboard's built files at /app, with index.html for every client-side route."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from backend.config import get_settings
from backend.errors import NotFound

router = APIRouter(include_in_schema=False)
# Vite names the files under assets/ by their content: they never change.
IMMUTABLE = "public, max-age=31536000, immutable"


def _index(root: Path) -> FileResponse:
    index = root / "index.html"
    if not index.is_file():
        raise NotFound("The dashboard is not built: run `make web` (npm, in web/).")
    return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/app")
async def dashboard_root() -> FileResponse:
    return _index(get_settings().resolved_web_dir)


@router.get("/app/{path:path}")
async def dashboard_file(path: str) -> FileResponse:
    """A built file when one matches, else index.html: the client router reads the path."""
    root = get_settings().resolved_web_dir.resolve()
    wanted = (root / path).resolve()
    if wanted.is_relative_to(root) and wanted.is_file() and wanted != root / "index.html":
        cache = IMMUTABLE if wanted.is_relative_to(root / "assets") else "public, max-age=300"
        return FileResponse(wanted, headers={"Cache-Control": cache})
    if path.startswith("assets/"):
        raise NotFound("No such dashboard file.")
    return _index(root)
