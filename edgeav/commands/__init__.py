"""One module per CLI command. Modules here import nothing heavy at module level."""
