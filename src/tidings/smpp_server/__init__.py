"""The SMPP 3.4 server: clients bind to Tidings (docs/smpp-server.md).

An edge adapter like the HTTP APIs: binds are authenticated against client credentials,
``submit_sm`` enters the same acceptance pipeline as REST, receipts go back as ``deliver_sm``.
Nothing is imported here, so ``messages.service`` can use ``store`` without a cycle.
"""
