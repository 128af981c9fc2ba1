"""Operator commands of the ``gateway`` CLI, one module per command family.

Each module exposes ``register(subparsers)``, which adds its sub-command(s) with ``set_defaults(handler=...)``; a
handler takes the parsed arguments and returns the exit status. Output goes through :mod:`gateway.commands.output`
so every command honours ``--json``.
"""
