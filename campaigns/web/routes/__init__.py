"""The web app's routes, one module per area of the pages."""

from campaigns.web.routes import (
           accounts,
           audit,
           campaigns,
           compose,
           login,
           metrics,
           schedules,
           uploads,
           users,
           webhooks,
)

ROUTERS = (login.router, campaigns.router, accounts.router, uploads.router, compose.router, schedules.router,
           metrics.router, users.router, audit.router, webhooks.router)
