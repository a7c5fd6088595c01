"""Clients (the gateway's customers), their API keys and settings."""
