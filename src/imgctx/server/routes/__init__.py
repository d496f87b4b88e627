"""The service's routers, one module per part of the contract."""
