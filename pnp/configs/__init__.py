"""Example configuration files of the ``stablepnp`` command line (package data)."""
