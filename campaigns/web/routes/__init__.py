"""The web app's routes, one module per area of the pages."""

from campaigns.web.routes import accounts, campaigns, compose, login, metrics, schedules, uploads, webhooks

ROUTERS = (login.router, campaigns.router, accounts.router, uploads.router, compose.router, schedules.router,
           metrics.router, webhooks.router)
