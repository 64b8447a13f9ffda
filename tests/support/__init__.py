"""What every tier shares: starting the real programs (``harness``), raw
WebSocket bytes on loopback (``net``), the client's fixtures
(``client_fixtures``), the phone apps' fakes (``phone_apps``) and a
misbehaving client in a process of its own (``fault_client``)."""
