"""What the tests share, each written once: the sandbox and its credentials (`sandbox`), the receiver of
callbacks and webhooks (`hooks`), `wait_until` (`waiting`), Blast's processes for engine tests (`engine`), the
servers the suite needs (`services`), the test databases (`databases`), rows (`factories`) and contact lists
(`samples`), misbehaving gateways (`gateway_doubles`), requests built from the gateways' documents
(`gateway_requests`), outages (`outages`), the limiter hammered from threads and processes (`rate_hammer`),
the web app behind a test client (`web`, `webhooks`) and in a browser (`browser`)."""
