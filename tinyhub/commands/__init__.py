"""The `tinyhub` subcommands, one module each: `main(argv, prog) -> exit status`. scripts/*.py wrap them."""
