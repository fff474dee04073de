"""The baseline: bare FastAPI endpoints behind flowdeck's own uvicorn settings (flowdeck.api.server).

``POST /runs`` reads the same multipart form as WES RunWorkflow the way a FastAPI app does
(Starlette's form parser, python-multipart; every part, attachments read) and answers a
constant. ``POST /runs/flowdeck-parser`` reads it with flowdeck's own parser instead
(flowdeck.api.multipart), for scale: what flowdeck does beyond reading the form. ``GET /status``
answers a constant RunStatus. Port from FLOWDECK_PORT.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from flowdeck.api.multipart import parse_form
from flowdeck.api.server import serve
from flowdeck.settings import Settings

RUN_ID = {"run_id": "00000000-0000-0000-0000-000000000000"}


def create_bare_app() -> FastAPI:
    app = FastAPI()

    @app.post("/runs")
    async def runs(request: Request) -> JSONResponse:
        form = await request.form(max_files=200, max_fields=64)
        try:
            for _, value in form.multi_items():
                if isinstance(value, UploadFile):
                    await value.read()
        finally:
            await form.close()
        return JSONResponse(RUN_ID)

    @app.post("/runs/flowdeck-parser")
    async def runs_flowdeck_parser(request: Request) -> JSONResponse:
        parse_form(await request.body(), request.headers["content-type"], max_files=200, max_fields=64)
        return JSONResponse(RUN_ID)

    @app.get("/status")
    async def status() -> JSONResponse:
        return JSONResponse({**RUN_ID, "state": "QUEUED"})

    return app


if __name__ == "__main__":
    asyncio.run(serve(create_bare_app(), Settings()))
