"""Inbound messages (MO): numbers clients own, messages suppliers deliver to them, and their
way on to the client (webhook, REST, SMPP). docs/inbound.md."""
