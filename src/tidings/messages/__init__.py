"""The one internal message model and status machine, shared by every API and channel."""
