"""A node's media cluster: the channel to media workers (``rpc``), where cases run
(``placement``), the bus between signaling nodes (``node_bus``), the node's side of the
workers (``gateway``), a worker's side (``media_host``) and the node's worker processes
(``supervisor``)."""
