"""stategate: an HTTP gateway that turns Kafka's asynchronous world into request/response.

The code lives in three layers, and imports run one way, top to bottom:

    stategate.views    HTTP: parse, validate, map outcomes to status codes
    stategate.app      use-cases and process wiring: orders, waiters, service calls, routing
    stategate.streams  Kafka: records, topics, the order view, the Faust services

`stategate.sdk` is the public surface for service authors; `python -m stategate`
(or the `stategate` command) runs a broker, a node, the services or a dev cluster.
"""
