"""Two accounts whose webhooks are signed with one secret: what the webhook tests post to."""

SECRET = "s3cret-hook"
CONFIG = f"""
[accounts.dv]
provider = "devino"
base_url = "http://127.0.0.1:9"
api_key = "k"
sender = "Blast"
rate = 10
webhook_secret = "{SECRET}"

[accounts.wa]
provider = "httpapi"
base_url = "http://127.0.0.1:9"
token = "t"
rate = 10
webhook_secret = "{SECRET}"
"""
