"""The HTTP side of a node: the aiohttp application (``app``), who may call what
(``access``), pages, ``/metrics``, the typed application state (``state``) and one module
per API area (``api``)."""
