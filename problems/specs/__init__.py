"""Example problem specifications (YAML) shipped with :mod:`problems`; see :func:`problems.bundled_spec_path`."""
