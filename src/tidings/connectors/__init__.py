"""Upstream suppliers behind one interface: the simulator, HTTP, SMPP."""
