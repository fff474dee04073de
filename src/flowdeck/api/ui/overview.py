"""The overview page: runs by state, runs per day and run durations per pipeline, as charts,
over the caller's research groups or one of them (services.runs.overview)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from flowdeck.api.ui import charts, web
from flowdeck.services.runs import overview as overview_service

router = APIRouter(prefix=web.PREFIX, route_class=web.UIRoute, include_in_schema=False)


@router.get("/overview")
async def overview_page(request: Request) -> Response:
    user = await web.require_user(request)
    group = request.query_params.get("group", "").strip() or None
    figures = await overview_service.overview(web.services_of(request), user, group)
    return web.render(
        request,
        "overview.html",
        figures=figures,
        group=group,
        groups=sorted(user.groups),
        sees_all=user.visible_groups() is None,
        states=charts.states(figures),
        days=charts.days(figures),
        durations=charts.durations(figures),
        duration=charts.duration,
        chart=charts,
    )
