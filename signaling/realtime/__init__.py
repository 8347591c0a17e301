"""socket.io: the event framework (``events``, a leaf), the payload schemas
(``schemas``), one module per namespace (``namespaces``) and their composition into one
server (``compose``)."""
