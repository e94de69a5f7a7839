"""hub-openapi: any OpenAPI 3.0 / 3.1 document becomes a hub connector at run time.

The plugin module is :mod:`hub_openapi.plugin`; see its docstring for the configuration.
"""

__version__ = "0.1.0"
