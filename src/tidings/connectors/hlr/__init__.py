"""HLR providers: connectors that answer where a number lives (docs/hlr.md)."""
