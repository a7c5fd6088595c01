"""Viber messages: their content, the SMS alternative, registered senders, and the fallback.

A Viber message is a row of the one `messages` table (channel "viber") on the one status
machine; what only Viber has (image, button, promotional flag, the SMS alternative) lives
in `viber_messages`, one row per message. See docs/viber.md.
"""
