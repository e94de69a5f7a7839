"""Odoo connector for the hub: records of any model over JSON-2 or JSON-RPC, a poll trigger."""
