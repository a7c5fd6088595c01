"""Seeds 001/002: the Smartswitch DLR interface, where suppliers post delivery receipts."""
