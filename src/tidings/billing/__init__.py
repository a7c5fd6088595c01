"""Price lists, quotes, and the balance ledger."""
