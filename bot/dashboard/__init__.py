"""The web dashboard (一屏感知): overview, cases, one case's timeline, volunteers and points,
served by the service's own aiohttp application under ``/dashboard``."""

from bot.dashboard.routes import Dashboard

__all__ = ["Dashboard"]
