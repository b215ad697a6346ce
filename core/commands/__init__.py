"""The engine's commands, one module each, mirroring ``qgis_plugin/algorithms/``.

Each module adds its subcommands to the CLI (``add_commands``) and holds the ``run_*``
function that a Processing algorithm and a CLI subcommand call: check the inputs, call
the science modules of :mod:`core`, write the outputs atomically. No science module
imports a command module.
"""
