"""The plugin kit's one error."""


class PluginKitError(ValueError):
    """A plugin cannot be generated, or its docs written, as asked; the message says why."""
