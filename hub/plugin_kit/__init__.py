"""The plugin kit: what the hub gives connector authors beyond the plugin API in :mod:`hub`.

- :mod:`hub.plugin_kit.brokers` (public, for plugins to import): the pieces every broker
  connector needs: message bodies encoded and decoded (JSON, text or base64), and the
  consumer's step around ``emit`` (record the event, acknowledge only after it is recorded,
  hand it back to the broker when it is not, finish a record in hand when the hub stops);
- :mod:`hub.plugin_kit.template`: ``hub new-plugin``, a plugin distribution rendered from the
  template shipped in ``hub/plugin_template/``;
- :mod:`hub.plugin_kit.docs`: ``hub plugins docs``, a markdown page per connector from its
  description.

The command-line tools' names are re-exported here.
"""

from hub.plugin_kit.docs import (
    GENERATED_MARK,
    connector_page,
    connector_pages,
    write_connector_docs,
)
from hub.plugin_kit.errors import PluginKitError
from hub.plugin_kit.template import check_plugin_name, new_plugin

__all__ = [
    "GENERATED_MARK",
    "PluginKitError",
    "check_plugin_name",
    "connector_page",
    "connector_pages",
    "new_plugin",
    "write_connector_docs",
]
