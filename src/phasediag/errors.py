"""The package's one exception type for bad input (light: every layer and `import phasediag` may import it)."""


class ConfigError(ValueError):
    """Bad user input (an option, a dataset, a tracking store); the message is one line naming the value and what is
    allowed. The CLI prints it as `phasediag: error: ...` and exits 2; the Python API raises it."""
