"""Helpers shared by the engine, the cards and the command line: atomic files, the Hub's HTTP client, tables,
command lines and the process clock. Internal: the public surface is `tinyhub`, `tinyhub.errors` and
`tinyhub.registry`."""
