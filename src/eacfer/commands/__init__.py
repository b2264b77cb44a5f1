"""CLI sub-commands, one module each (see eacfer.commands.cli)."""
