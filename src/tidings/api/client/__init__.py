"""The client REST API of seed 004 (KetchUp-style `/rest/...` with X-API-KEY)."""
