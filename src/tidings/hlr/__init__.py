"""HLR lookups (seed 004): accepted, charged, queried through an HLR provider, reported."""
