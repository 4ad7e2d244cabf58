"""The ``s2s`` command: one module per subcommand; each parses, calls and prints."""
