"""The bounds on every input a client sends, in one place.

The FastAPI routes declare them (validation and the OpenAPI document) and
the plain-ASGI hot paths check the same numbers before they take a request
(views/long_poll.py, order_posts.py, service_requests.py).
"""

from __future__ import annotations

MAX_NAME_LENGTH = 64
NAME_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
"""Customer ids and product names: not blank, and no control characters (NUL, newlines, escapes)."""

MAX_ORDER_ID_LENGTH = 64
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_IF_NONE_MATCH_LENGTH = 1024
MAX_PREFER_LENGTH = 256
MAX_SERVICE_LENGTH = 64
MAX_SERVICE_PATH_LENGTH = 2048
