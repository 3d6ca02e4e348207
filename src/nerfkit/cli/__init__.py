"""Command line: ``nerfkit demo | train | eval | render``."""
