"""Gateway webhooks: /hooks/<provider>/<account>."""

from fastapi import APIRouter

router = APIRouter()
