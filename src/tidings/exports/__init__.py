"""Statistics exports: files of a client's message history in JSON, XML and CSV."""
