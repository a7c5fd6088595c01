"""Suppliers (upstream carriers) and the routes that choose one for each message."""
