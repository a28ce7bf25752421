"""The service SDK: write a request/response service behind the gateway in a few lines.

    from stategate.sdk import Reply, Service, ServiceRequest

    echo = Service(faust_app, "echo", "echo-requests")

    @echo.handler
    async def handle(request: ServiceRequest) -> Reply:
        return Reply(200, {"path": request.path})

The topic contract it implements is in `stategate.streams.service_sdk`.
"""

from stategate.streams.service_sdk import (
    Chunks,
    Reply,
    Service,
    ServiceError,
    ServiceRequest,
    UnanswerableRequest,
    problem,
    read_key,
)

__all__ = ["Chunks", "Reply", "Service", "ServiceError", "ServiceRequest", "UnanswerableRequest", "problem", "read_key"]
