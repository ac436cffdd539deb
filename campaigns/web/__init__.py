"""The web app: operator pages and gateway webhooks (FastAPI)."""
