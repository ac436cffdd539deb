"""`blast import`: a dry-run ingest report (built with the ingest module)."""
