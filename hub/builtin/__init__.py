"""The plugins that ship with the hub, registered like external ones."""
