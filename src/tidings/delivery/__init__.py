"""Getting accepted messages to suppliers and their reports back: dispatch, receipts, expiry."""
