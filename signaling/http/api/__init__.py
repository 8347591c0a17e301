"""The REST API, one module per area, each with its ``routes`` (an aiohttp
``RouteTableDef``): accounts and sign-in, admin, cases, spaces."""
