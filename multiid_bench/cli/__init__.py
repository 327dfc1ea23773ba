"""The ``mbench`` command line: a lazy table of sub-commands, one module per command group."""
